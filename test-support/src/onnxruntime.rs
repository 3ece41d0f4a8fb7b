//! The onnxruntime library for the tests that run the model under both runtimes.
//!
//! The library is not part of a fresh machine: `ORT_DYLIB_PATH` names it (CI installs the PyPI
//! `onnxruntime` wheel and exports the path of its `libonnxruntime.so`). Without it those tests
//! are skipped loudly, or fail when `CI` is set, like the other tool-backed tests.

use std::io::Write;
use std::path::PathBuf;

/// The library named by `ORT_DYLIB_PATH`, or `None` after a loud skip message. Panics when `CI`
/// is set and the library is missing, or when the variable names a file that does not exist.
pub fn library(test: &str) -> Option<PathBuf> {
    let configured = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty());
    match configured.map(PathBuf::from) {
        Some(path) if path.is_file() => Some(path),
        Some(path) => panic!(
            "ORT_DYLIB_PATH is {} but there is no such file",
            path.display()
        ),
        None if std::env::var_os("CI").is_some() => panic!(
            "CI is set but ORT_DYLIB_PATH is not: {test} needs the onnxruntime library \
             (pip install onnxruntime, then export ORT_DYLIB_PATH=.../onnxruntime/capi/libonnxruntime.so.*)"
        ),
        None => {
            // Straight to the stderr handle: the test harness captures `eprintln!` of a passing
            // test, and a skip must not go unnoticed.
            let _ = writeln!(
                std::io::stderr(),
                "\n==================== SKIPPED ====================\n\
                 {test} needs the onnxruntime library: pip install onnxruntime, then\n\
                 export ORT_DYLIB_PATH=<site-packages>/onnxruntime/capi/libonnxruntime.so.<version>\n\
                 Set CI=1 to make this a failure.\n\
                 ================================================="
            );
            None
        }
    }
}
