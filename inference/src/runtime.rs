//! Which runtime runs the model, tract or onnxruntime, and why.
//!
//! tract is compiled in and always available. onnxruntime is a shared library loaded at run
//! time (`libonnxruntime.so`, e.g. from the PyPI `onnxruntime` wheel), so that nothing is
//! downloaded at build time and a fresh machine builds and runs without it. `--runtime auto`
//! (the default) takes onnxruntime when its library loads and tract otherwise;
//! `--runtime onnxruntime` insists, and a library that does not load stops the service at
//! start-up with the path that was tried.
//!
//! The library is loaded once per process (the dynamic loader keeps it); a later selection with
//! another path reuses the first one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::ValueEnum;

use crate::error::{Error, LoadFailure};

/// The library name the dynamic loader looks for when `ORT_DYLIB_PATH` is not set.
pub const DEFAULT_ORT_LIBRARY: &str = "libonnxruntime.so";

/// The tract release this crate is built with (the workspace's `tract-onnx` requirement; a
/// test checks it against Cargo.lock).
pub const TRACT_VERSION: &str = "0.23";

/// `--runtime`: what the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeChoice {
    /// onnxruntime when its library loads, else tract.
    Auto,
    /// tract, compiled in.
    Tract,
    /// onnxruntime; fails at start-up when its library does not load.
    Onnxruntime,
}

/// The runtime that runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Tract,
    Onnxruntime,
}

impl Runtime {
    /// The stable name in logs, metrics and the benchmark (`tract`, `onnxruntime`).
    pub fn label(self) -> &'static str {
        match self {
            Runtime::Tract => "tract",
            Runtime::Onnxruntime => "onnxruntime",
        }
    }
}

/// The outcome of the selection: the runtime, its version and the reason it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub runtime: Runtime,
    pub version: String,
    pub reason: String,
}

/// Where the onnxruntime library is looked for: `ORT_DYLIB_PATH` when set (and not empty), else
/// [`DEFAULT_ORT_LIBRARY`] on the loader's search path.
pub fn library_path(configured: Option<&Path>) -> PathBuf {
    configured
        .filter(|path| !path.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_ORT_LIBRARY), Path::to_path_buf)
}

/// Picks the runtime for `choice`, loading the onnxruntime library when it may be used.
pub fn select(choice: RuntimeChoice, library: Option<&Path>) -> Result<Selection, Error> {
    let path = library_path(library);
    match choice {
        RuntimeChoice::Tract => Ok(tract("--runtime tract".to_owned())),
        RuntimeChoice::Onnxruntime => {
            let version = load_onnxruntime(&path)?;
            Ok(Selection {
                runtime: Runtime::Onnxruntime,
                version,
                reason: format!("--runtime onnxruntime, library {}", path.display()),
            })
        }
        RuntimeChoice::Auto => match load_library(&path) {
            Ok(version) => Ok(Selection {
                runtime: Runtime::Onnxruntime,
                version,
                reason: format!(
                    "--runtime auto: onnxruntime library {} loaded",
                    path.display()
                ),
            }),
            Err(err) => Ok(tract(format!(
                "--runtime auto: no onnxruntime library at {} ({err}); set ORT_DYLIB_PATH to \
                 use onnxruntime",
                path.display()
            ))),
        },
    }
}

fn tract(reason: String) -> Selection {
    Selection {
        runtime: Runtime::Tract,
        version: TRACT_VERSION.to_owned(),
        reason,
    }
}

/// Loads the onnxruntime library at `path` (once per process) and returns its version.
pub fn load_onnxruntime(path: &Path) -> Result<String, Error> {
    load_library(path).map_err(|source| Error::RuntimeLibrary {
        path: path.to_owned(),
        source,
    })
}

/// The first attempt's outcome, kept for the life of the process: `ort` cannot retry a failed
/// load (its lock reads as initialised afterwards), and a loaded library stays loaded.
fn load_library(path: &Path) -> Result<String, LoadFailure> {
    static FIRST: Mutex<Option<(PathBuf, Result<String, LoadFailure>)>> = Mutex::new(None);
    let mut first = harness_core::sync::lock(&FIRST);
    if let Some((loaded, outcome)) = first.as_ref() {
        if loaded != path {
            tracing::warn!(
                asked = %path.display(),
                kept = %loaded.display(),
                "onnxruntime's library is loaded once per process; keeping the first outcome"
            );
        }
        return outcome.clone();
    }
    let outcome = first_load(path);
    *first = Some((path.to_owned(), outcome.clone()));
    outcome
}

fn first_load(path: &Path) -> Result<String, LoadFailure> {
    // A path with a directory is checked here; a bare name is left to the loader's search.
    if path.components().count() > 1 && !path.is_file() {
        return Err(Arc::new(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        )));
    }
    ort::init_from(path)
        .map_err(|err| Arc::new(err) as LoadFailure)?
        // No telemetry from a service; the name shows in onnxruntime's own log lines.
        .with_name("inference")
        .with_telemetry(false)
        .commit();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    Ok(version_from_maps(&maps)
        .or_else(|| version_from_build_info(ort::info()))
        .unwrap_or_else(|| "unknown".to_owned()))
}

/// The version in the file name of the loaded library (`libonnxruntime.so.1.32.0`, as the
/// wheel and the release archives name it), found among the process's mappings: `ort` does not
/// expose onnxruntime's version string, and the path given may be a symlink or a bare name.
fn version_from_maps(maps: &str) -> Option<String> {
    maps.lines()
        .filter_map(|line| line.rsplit('/').next())
        .find_map(|file| file.strip_prefix("libonnxruntime.so."))
        .filter(|version| version.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_owned)
}

/// The release in onnxruntime's build information (`git-branch=rel-1.32.0, ...`), when a
/// release branch built it.
fn version_from_build_info(info: &str) -> Option<String> {
    info.split([',', ' '])
        .find_map(|field| field.trim().strip_prefix("git-branch=rel-"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_file_name_or_the_release_branch() {
        let maps = "7f00-7f01 r--p 00000000 08:01 42 /usr/lib/libc.so.6\n\
                    7f02-7f03 r-xp 00001000 08:01 43 /opt/ort/capi/libonnxruntime.so.1.32.0\n";
        assert_eq!(version_from_maps(maps).as_deref(), Some("1.32.0"));
        assert_eq!(
            version_from_maps("7f02-7f03 r-xp 0 0 /x/libonnxruntime.so\n"),
            None
        );
        let info = "ORT Build Info: git-branch=rel-1.32.0, git-commit-id=abc, build type=Release";
        assert_eq!(version_from_build_info(info).as_deref(), Some("1.32.0"));
        assert_eq!(
            version_from_build_info("git-branch=HEAD, build type=Release"),
            None
        );
    }

    #[test]
    fn an_empty_library_path_means_the_default() {
        assert_eq!(library_path(None), PathBuf::from(DEFAULT_ORT_LIBRARY));
        assert_eq!(
            library_path(Some(Path::new(""))),
            PathBuf::from(DEFAULT_ORT_LIBRARY)
        );
        assert_eq!(
            library_path(Some(Path::new("/x.so"))),
            PathBuf::from("/x.so")
        );
    }

    #[test]
    fn auto_falls_back_to_tract_and_an_explicit_choice_fails_naming_the_path() {
        let missing = Path::new("/nonexistent/libonnxruntime.so");
        let auto = select(RuntimeChoice::Auto, Some(missing)).unwrap();
        assert_eq!(auto.runtime, Runtime::Tract);
        assert!(
            auto.reason.contains("/nonexistent/libonnxruntime.so"),
            "{auto:?}"
        );
        let err = select(RuntimeChoice::Onnxruntime, Some(missing)).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/libonnxruntime.so"),
            "{err}"
        );
        assert_eq!(
            select(RuntimeChoice::Tract, Some(missing)).unwrap().runtime,
            Runtime::Tract
        );
    }

    #[test]
    fn the_tract_version_matches_the_lock_file() {
        let lock = include_str!("../../Cargo.lock");
        let pinned = format!("name = \"tract-onnx\"\nversion = \"{TRACT_VERSION}.");
        assert!(lock.contains(&pinned), "Cargo.lock has no {pinned:?}");
    }
}
