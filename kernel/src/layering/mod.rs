//! The arrows point one way: every module sits in a layer and may use its
//! own layer and the ones below, never one above. A lower layer that must
//! call up does it through a hook or a function the upper layer hands down
//! (the NMI reaching the backtracer: `arch::nmi::register_nmi_handler`; a
//! new thread reaching the scheduler: `arch::switch::set_thread_main`; an
//! AP reaching its bring-up: `smpboot::start_ap`'s `ap_main`).
//!
//! Checked here by `cargo test` on the import graph: every `use crate::…`
//! (grouped `use crate::{a, b}` included), every inline `crate::x::…` path,
//! every `$crate::` in a macro and every `super::` path (resolved against
//! the file and any inline `mod` around it), with comments and string
//! literals skipped. The layers are in `LAYERS`, bottom first, each with its job.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The layers, bottom first, each with its one-line job. A module is named
/// by its path below the crate root (`arch::traps`: the `x86_64` level of
/// `arch/` is left out, as `arch` re-exports it); the longest listed prefix
/// decides a module's layer.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("the memory map: sizes and addresses; hooks, how a lower layer calls up", &["layout", "hooks"]),
    ("devices: UART, PIT, PIC, ACPI tables, QEMU exit", &["drivers"]),
    ("the CPU: registers, descriptor tables, per-CPU base, APIC, entry stubs", &["arch"]),
    ("locks, time and rate limits", &["sync", "time", "ratelimit"]),
    ("the console (printk)", &["console"]),
    ("the in-kernel test harness", &["ktest"]),
    ("IPIs between CPUs: reschedule, function calls, TLB shoot-down", &["smp"]),
    ("memory: frames, page tables, heap, vmap, address spaces", &["mm"]),
    ("the stacks: thread, IRQ, exception, extra; usage; which stack", &["stacks"]),
    ("threads and the scheduler", &["sched"]),
    ("console input: a reader sleeps until a byte comes", &["tty"]),
    ("deferred work (softirqs); bringing the other CPUs up", &["softirq", "smp::bringup", "smp::ktests"]),
    ("debugging: symbols, unwinder, backtraces, oops, panic, tracer", &["debug"]),
    ("user processes and the block layer", &["user", "block"]),
    ("the generic entry and exit work (Linux kernel/entry/common.c)", &["entry"]),
    (
        "entry: the stubs the CPU enters through (trap, IRQ, NMI, #MC, #DB, syscall) and the handlers they call",
        &["arch::entry"],
    ),
    ("commands: what one is; parsing command lines and arguments", &["cmd"]),
    ("the demos", &["demos"]),
    ("the shell", &["shell"]),
    ("boot: brings every layer up, bottom first", &["boot", "main"]),
];

/// Files that are not kernel modules (the crate root, the source checks).
fn not_a_module(rel: &Path) -> bool {
    rel == Path::new("lib.rs") || rel == Path::new("conventions.rs") || rel.starts_with("layering")
}

pub(crate) mod paths;

use paths::{code_only, ident, module_of, module_segments, named_paths, normalize, rust_files, src};

/// The layer of module path `path`: its longest listed prefix.
fn layer_of(path: &str) -> Option<usize> {
    let path = path.strip_prefix("arch::x86_64").map_or(path.to_string(), |p| format!("arch{p}"));
    let mut best: Option<(usize, usize)> = None;
    for (layer, (_, modules)) in LAYERS.iter().enumerate() {
        for m in *modules {
            let hit = path == *m || path.starts_with(&format!("{m}::"));
            if hit && best.is_none_or(|(len, _)| m.len() > len) {
                best = Some((m.len(), layer));
            }
        }
    }
    best.map(|(_, layer)| layer)
}

/// Macros exported at the crate root, by the module that defines them.
fn exported_macros(files: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (module, code) in files {
        let mut rest = code.as_str();
        while let Some(at) = rest.find("#[macro_export]") {
            rest = &rest[at..];
            if let Some(m) = rest.find("macro_rules!") {
                let name = ident(rest[m + "macro_rules!".len()..].trim_start());
                out.push((name.to_string(), module.clone()));
            }
            rest = &rest[1..];
        }
    }
    out
}

/// (file, module, named module path) for every upward edge.
fn upward_edges() -> Vec<(String, String, String)> {
    let src = src();
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: Vec<(String, Vec<String>, String)> = paths
        .iter()
        .map(|p| p.strip_prefix(&src).unwrap())
        .filter(|rel| !not_a_module(rel))
        .map(|rel| {
            (rel.display().to_string(), module_segments(rel), code_only(&fs::read_to_string(src.join(rel)).unwrap()))
        })
        .collect();
    let macros = exported_macros(&files.iter().map(|(_, m, c)| (normalize(m), c.clone())).collect::<Vec<_>>());
    let mut up = Vec::new();
    for (file, segments, code) in &files {
        let module = normalize(segments);
        let from = layer_of(&module).unwrap_or_else(|| panic!("{file}: module {module} is in no layer of LAYERS"));
        for path in named_paths(code, segments) {
            let first = path.split("::").next().unwrap();
            let target = macros.iter().find(|(name, _)| name == first).map_or(path.clone(), |(_, m)| m.clone());
            let Some(to) = layer_of(&target) else { panic!("{file}: `crate::{path}` names no module of LAYERS") };
            if to > from {
                up.push((file.clone(), module.clone(), target));
            }
        }
    }
    up
}

/// The named module, cut to the key of the layer it is in (`arch::traps::die`
/// → `arch::traps`, `sched::exit` → `sched`).
fn layer_key(path: &str) -> String {
    let layer = layer_of(path).unwrap();
    LAYERS[layer]
        .1
        .iter()
        .filter(|m| path == **m || path.starts_with(&format!("{m}::")))
        .max_by_key(|m| m.len())
        .unwrap()
        .to_string()
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let found: BTreeSet<(String, String)> =
        upward_edges().into_iter().map(|(file, _, target)| (file, layer_key(&target))).collect();
    let lines: Vec<String> = found.iter().map(|(f, m)| format!("  {f} -> {m}")).collect();
    assert!(
        lines.is_empty(),
        "{} upward edges (use a hook the upper layer registers, or move the code):\n{}",
        lines.len(),
        lines.join("\n")
    );
}

#[test]
fn every_module_is_in_a_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in files {
        let rel = f.strip_prefix(src()).unwrap();
        if !not_a_module(rel) {
            assert!(layer_of(&module_of(rel)).is_some(), "{} is in no layer", rel.display());
        }
    }
}

#[test]
fn the_parser_sees_every_form_of_path() {
    let code = code_only(
        "use crate::sched::{self, exit::{a, b}, Task};\n\
         use crate::{mm, arch::cpu};\n\
         let x = crate::time::jiffies(); // crate::shell::run\n\
         let s = \"crate::demos::x\"; let c = '\"'; let l: &'static str = r#\"crate::boot\"#;\n\
         $crate::console::_print(x);",
    );
    let module = ["arch".to_string(), "x86_64".to_string(), "entry".to_string()];
    let want = ["sched::self", "sched::exit::a", "sched::exit::b", "sched::Task", "mm", "arch::cpu", "time::jiffies"];
    assert_eq!(named_paths(&code, &module), [&want[..], &["console::_print"]].concat());
    // `super::` from a file, and from an inline module inside it.
    let code = code_only("use super::syscall::x; mod ktests { use super::super::traps::{die, Oops}; use super::y; }");
    let want = ["arch::syscall::x", "arch::traps::die", "arch::traps::Oops", "arch::entry::y"];
    assert_eq!(named_paths(&code, &module), want);
}

#[test]
fn an_upward_path_is_found() {
    // `mm` naming `shell` runs up four layers; `shell` naming `mm` does not.
    let (mm, shell) = (layer_of("mm::phys").unwrap(), layer_of("shell").unwrap());
    assert!(mm < shell);
    assert_eq!(layer_of("arch::x86_64::entry::traps::die"), layer_of("arch::entry"));
    assert!(layer_of("arch::entry::traps").unwrap() > layer_of("arch::cpu").unwrap());
    let planted = code_only("fn f() { crate::shell::run(\"x\"); }");
    assert_eq!(named_paths(&planted, &["mm".to_string()]), ["shell::run"]);
}
