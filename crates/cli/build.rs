include!("../libtorch_link.rs");

fn main() {
    link_libtorch();
    // `fgstp info` reports the tch version actually resolved in Cargo.lock.
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let tch = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let at = text.find("name = \"tch\"\nversion = \"")? + 24;
            text[at..].split('"').next().map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FGSTP_TCH_VERSION={tch}");
}
