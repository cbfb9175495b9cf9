// Shared by the build scripts (via crates/libtorch_link.rs) and `fgstp info`.

/// The version of the libtorch whose `lib/` directory is `lib_dir`: `build-version` in a
/// standalone libtorch, `__version__ = '2.13.0+cu130'` in the PyPI wheel's `version.py`.
pub fn libtorch_version(lib_dir: &std::path::Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().to_string());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    let line = py.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split(['\'', '"']).nth(1)?.to_string())
}
