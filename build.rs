// Bake libtorch's folder into the binaries' rpath, so `cargo run`, `cargo test` and the built binary
// find libtorch_cpu.so without LD_LIBRARY_PATH (cargo overrides that variable for run/test).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
