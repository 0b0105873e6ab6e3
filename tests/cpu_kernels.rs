//! Which CPU kernels the numeric libraries run, printed, and — when `.ci/run` asks for the
//! kernels of an AVX2-only machine (`ONEDNN_MAX_CPU_ISA=AVX2`, `OPENBLAS_CORETYPE=Haswell`, …) —
//! checked to be those, so the suite's second pass really exercises what AMD EPYC users run.
//! Needs models/ from set-up, not ../shared.
mod common;
use std::process::Command;

#[test]
fn kernels_in_use_are_reported_and_honour_the_requested_isa() {
    common::models();
    let d = tempfile::tempdir().unwrap();
    let data = tuwen::data::synthetic::generate(&d.path().join("syn"), 4, 0, 3).unwrap();
    // One small forward pass with oneDNN's and MKL's verbose logs on.
    let out = Command::new(env!("CARGO_BIN_EXE_tuwen"))
        .args(["extract", "--quiet", "--no-cache", "--flip", "false"])
        .args(["--backbone", "efficientnet-lite0", "--pairs"])
        .arg(&data.train_pairs)
        .arg("--images")
        .arg(&data.images)
        .env("ONEDNN_VERBOSE", "1")
        .env("MKL_VERBOSE", "1")
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let onednn: Vec<&str> = log.lines().filter(|l| l.contains("isa:")).collect();
    let mkl: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("MKL_VERBOSE") && l.contains("enabled processors"))
        .collect();
    let openblas = tuwen::blas::core_name();
    eprintln!("OpenBLAS core: {openblas}");
    eprintln!("oneDNN: {}", onednn.first().unwrap_or(&"(no isa line)"));
    eprintln!("MKL: {}", mkl.first().unwrap_or(&"(not called)"));
    for v in [
        "ONEDNN_MAX_CPU_ISA",
        "ATEN_CPU_CAPABILITY",
        "MKL_ENABLE_INSTRUCTIONS",
        "OPENBLAS_CORETYPE",
    ] {
        eprintln!("{v}={}", std::env::var(v).unwrap_or_default());
    }
    assert!(!openblas.is_empty(), "OpenBLAS names no core");
    if std::env::var("OPENBLAS_CORETYPE").is_ok_and(|v| v.eq_ignore_ascii_case("haswell")) {
        assert!(
            openblas.eq_ignore_ascii_case("haswell"),
            "OpenBLAS ignored OPENBLAS_CORETYPE: {openblas}"
        );
    }
    if std::env::var("ONEDNN_MAX_CPU_ISA").is_ok_and(|v| v.eq_ignore_ascii_case("avx2")) {
        let isa = onednn
            .first()
            .expect("oneDNN printed no isa line with ONEDNN_VERBOSE=1");
        assert!(
            isa.contains("AVX2") && !isa.contains("AVX-512") && !isa.contains("AVX512"),
            "{isa}"
        );
    }
    if std::env::var("MKL_ENABLE_INSTRUCTIONS").is_ok_and(|v| v.eq_ignore_ascii_case("avx2")) {
        for l in &mkl {
            assert!(!l.contains("AVX-512") && !l.contains("AVX512"), "{l}");
        }
    }
}
