//! Which OpenBLAS kernels run the linear algebra (PCA, CCA, ranking).
//!
//! OpenBLAS picks its kernel set once, when the library loads, from the CPU model. Debian 12's
//! OpenBLAS 0.3.21 does not know recent Intel server models (Sapphire/Emerald Rapids, family 6
//! model 143/207) and falls back to its generic Prescott (SSE3) kernels, 4–10× slower than the
//! AVX-512 ones the CPU can run. The only switch is the `OPENBLAS_CORETYPE` environment variable,
//! read at load time, so a binary fixes it by re-executing itself with the variable set.
use std::ffi::CStr;
use std::os::raw::c_char;

extern "C" {
    fn openblas_get_corename() -> *const c_char;
}

/// The kernel set OpenBLAS chose for this process (e.g. "SkylakeX", "Haswell", "Prescott").
pub fn core_name() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string inside OpenBLAS.
    let p = unsafe { openblas_get_corename() };
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// What the CPU can run, as far as OpenBLAS's x86 kernel families care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    pub avx512: bool,
    pub avx2_fma: bool,
}

impl CpuFeatures {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            CpuFeatures {
                avx512: has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq"),
                avx2_fma: has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures::default()
    }
}

/// The core type to ask for when OpenBLAS chose a generic fallback (`core`) on a CPU that runs
/// better kernels; `None` when its choice is already a modern one or nothing better exists.
pub fn better_core_type(core: &str, cpu: CpuFeatures) -> Option<&'static str> {
    const GENERIC: [&str; 8] = [
        "prescott",
        "core2",
        "penryn",
        "dunnington",
        "nehalem",
        "atom",
        "northwood",
        "katmai",
    ];
    if !GENERIC.contains(&core.to_ascii_lowercase().as_str()) {
        return None;
    }
    if cpu.avx512 {
        Some("SkylakeX")
    } else if cpu.avx2_fma {
        Some("Haswell")
    } else {
        None
    }
}

/// For a program's `main`: when OpenBLAS fell back to generic kernels and `OPENBLAS_CORETYPE` is
/// unset, run this same program again with the variable set (the process image is replaced, so
/// this returns only when nothing needed doing or the re-exec failed).
pub fn reexec_with_fast_kernels() {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() {
        return;
    }
    let Some(core) = better_core_type(&core_name(), CpuFeatures::detect()) else {
        return;
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("OPENBLAS_CORETYPE", core)
            .exec();
        eprintln!(
            "note: could not restart with OPENBLAS_CORETYPE={core} ({err}); linear algebra runs \
             on OpenBLAS's slow generic kernels"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_kernels_are_upgraded_to_what_the_cpu_runs() {
        let avx512 = CpuFeatures {
            avx512: true,
            avx2_fma: true,
        };
        let avx2 = CpuFeatures {
            avx512: false,
            avx2_fma: true,
        };
        assert_eq!(better_core_type("Prescott", avx512), Some("SkylakeX"));
        assert_eq!(better_core_type("Prescott", avx2), Some("Haswell"));
        assert_eq!(better_core_type("Nehalem", CpuFeatures::default()), None);
        // A modern choice is left alone, even if a wider one exists.
        assert_eq!(better_core_type("Haswell", avx512), None);
        assert_eq!(better_core_type("SkylakeX", avx512), None);
        assert_eq!(better_core_type("Zen", avx512), None);
    }

    #[test]
    fn openblas_reports_its_kernels() {
        assert!(!core_name().is_empty());
    }
}
