//! Embeds the user programs (built for x86_64-unknown-none by the same
//! `cargo` invocation, as an artifact dependency, like the kernel itself
//! is for the runner) as a table `(name, ELF bytes)` in `user::programs`.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let prefix = "CARGO_BIN_FILE_USER_PROGRAMS_";
    let mut programs: Vec<(String, String)> =
        std::env::vars().filter_map(|(k, v)| k.strip_prefix(prefix).map(|name| (name.to_string(), v))).collect();
    programs.sort();
    let wanted = std::env::var_os("CARGO_FEATURE_USER_PROGRAMS").is_some();
    assert!(!wanted || !programs.is_empty(), "no user programs: is the artifact dependency missing?");
    let mut table =
        String::from("/// Every user program: name and ELF image.\npub static PROGRAMS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &programs {
        writeln!(table, "    ({name:?}, include_bytes!({path:?})),").unwrap();
        println!("cargo:rerun-if-changed={path}");
    }
    table.push_str("];\n");
    std::fs::write(out.join("programs.rs"), table).expect("writing programs.rs");
    // The boot banner says how the kernel was built (benchmark figures
    // depend on it).
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=TRISTACK_BUILD={profile}, opt-level {opt}");
}
