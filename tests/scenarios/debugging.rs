//! `./x gdb` (docs/debugging.md): gdb on QEMU's stub with the kernel's
//! DWARF and scripts/gdb/tristack.py. The test stops the kernel inside a
//! hard IRQ nested in a softirq of a hard IRQ and checks that gdb's own walk
//! (`ts-bt`, from memory) names the same frames, across the same stacks, as
//! the kernel's unwinder prints a moment later.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::common::*;

/// A TCP port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `name+0x..` lines and stack markers of a trace, without `? ` guesses and offsets.
fn frames(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with(' ') && !l.starts_with(" ? "))
        .map(|l| l.trim().split('+').next().unwrap().to_string())
        .collect()
}

#[test]
fn gdb_walks_the_same_frames_across_the_irq_stack_as_the_kernel() {
    let port = free_port().to_string();
    let timeout = TIMEOUT_SECS.to_string();
    let mut runner = Command::new(RUNNER)
        .args(["--gdb", "--gdb-port", &port, "--timeout", &timeout, "--", "bt-irq; poweroff"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the runner");
    let elf = runner_elf();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gdb/tristack.py");
    let gdb = Command::new("gdb")
        .args(["-q", "-batch", "-nx", "-x"])
        .arg(&script)
        .args(["-ex", "set pagination off", "-ex", "set tcp connect-timeout 60"])
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "break tristack::demos::backtraces::bt_irq_inner", "-ex", "continue"])
        .args(["-ex", "echo === ts-bt\\n", "-ex", "ts-bt", "-ex", "echo === ts-stacks\\n", "-ex", "ts-stacks"])
        .args(["-ex", "echo === ts-ps\\n", "-ex", "ts-ps", "-ex", "echo === end\\n", "-ex", "continue"])
        .arg(&elf)
        .output()
        .expect("run gdb (./x installs it: apt-get install gdb)");
    let status = runner.wait().unwrap();
    let mut serial = String::new();
    runner.stdout.take().unwrap().read_to_string(&mut serial).unwrap();
    let out = String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let context = format!("--- gdb\n{out}\n--- serial\n{serial}");
    assert_eq!(status.code(), Some(0), "{context}");

    let section = |name: &str| -> Vec<&str> {
        let start =
            out.find(&format!("=== {name}\n")).unwrap_or_else(|| panic!("no {name} in gdb's output:\n{context}"));
        out[start..].lines().skip(1).take_while(|l| !l.starts_with("=== ")).collect()
    };
    let kernel: Vec<&str> = serial[serial.find("bt-irq: in a hard IRQ").expect(&context)..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with(' '))
        .collect();
    let (ours, theirs) = (frames(&section("ts-bt")), frames(&kernel));
    assert!(theirs.len() > 10 && theirs.iter().any(|f| f == "<IRQ>"), "{context}");
    assert_eq!(ours, theirs, "gdb's walk vs the kernel's:\n{context}");

    // Every CPU's stacks, the IST rows' tops as the live TSS has them.
    let stacks = section("ts-stacks");
    for cpu in ["0", "1"] {
        for kind in ["IRQ", "#DF", "NMI", "#DB1", "#DB", "#MC"] {
            assert!(stacks.iter().any(|l| l.split_whitespace().take(2).eq([cpu, kind])), "no {cpu} {kind}:\n{context}");
        }
    }
    assert!(stacks.iter().any(|l| l.contains("IST3, TSS top 0xfffffe000000d000")), "{context}");
    // The shell (init) is the one running, on CPU 0.
    assert!(section("ts-ps").iter().any(|l| l.contains("running on CPU 0") && l.ends_with("init")), "{context}");
}

fn runner_elf() -> String {
    runner(&["--kernel-elf"]).serial.trim().to_string()
}
