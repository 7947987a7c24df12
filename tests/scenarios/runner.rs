//! The runner (README "The runner"): its flags, its exit statuses, what it
//! adds to the serial log, and the modes that do not boot a command line.
//! Not a kernel chapter, so not a demo: the host side of every boot.

use crate::common::*;

#[test]
fn timeout_kills_qemu_and_exits_124() {
    let t = token("waiting");
    // Long enough to boot even when every core is busy with other scenarios
    // (a boot takes about 0.45 s alone, 1.5 s with both cores loaded).
    let run = runner(&["--timeout", "4", "--", &format!("echo {t}")]);
    run.expect_status(124).expect(&t);
    assert!(run.serial.trim_end().ends_with("tristack>"), "shell should be waiting:\n{run}");
    assert!(run.stderr.contains("timeout: killed QEMU after 4 s (--timeout 4)"), "{run}");
}

#[test]
fn runner_usage_errors_exit_2_without_booting() {
    for args in [&["--smp", "0"][..], &["--accel", "hvf"], &["--mem", "lots"], &["--frobnicate"]] {
        let run = runner(args);
        assert_eq!(run.status, Some(2), "{args:?}: {run}");
        assert!(run.stderr.starts_with("error:") && run.stderr.contains("--help"), "{args:?}: {run}");
        assert!(run.serial.is_empty(), "{args:?} booted anyway: {run}");
    }
    // A combination QEMU cannot do is said before QEMU starts.
    let run = runner(&["--icount", "--accel", "kvm"]);
    assert_eq!(run.status, Some(2), "{run}");
    assert!(run.stderr.contains("--icount needs --accel tcg"), "{run}");
    assert!(run.serial.is_empty(), "booted anyway: {run}");
}

/// `--timestamps` puts the host time since QEMU started before every line
/// (where a slow boot spends its time: docs/performance.md, KVM).
#[test]
fn timestamps_prefix_every_serial_line() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner(&["--timestamps", "--timeout", &timeout, "--", "echo stamped; poweroff"]);
    run.expect_status(0);
    let lines: Vec<&str> = run.serial.lines().collect();
    assert!(lines.len() > 5, "{run}");
    for l in &lines {
        let (stamp, _) = l.split_once("] ").unwrap_or_else(|| panic!("no stamp: {l:?}"));
        let secs: f64 = stamp.trim_start_matches('[').trim().parse().unwrap_or_else(|_| panic!("{l:?}"));
        assert!((0.0..60.0).contains(&secs), "{l:?}");
    }
    assert!(lines.iter().any(|l| l.ends_with("] stamped")), "{run}");
}

#[test]
fn image_only_prints_an_existing_disk_image() {
    let run = runner(&["--image-only"]);
    assert_eq!(run.status, Some(0), "{run}");
    let path = run.serial.trim();
    assert!(path.ends_with(".img") && std::path::Path::new(path).is_file(), "{run}");
}

#[test]
fn serial_log_holds_the_console() {
    let t = token("logged");
    let log = std::env::temp_dir().join(format!("{t}.log"));
    let timeout = TIMEOUT_SECS.to_string();
    let log_arg = log.to_str().unwrap();
    let run = runner(&["--timeout", &timeout, "--serial-log", log_arg, "--", &format!("echo {t}; poweroff")]);
    run.expect_status(0);
    let logged = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert_eq!(logged, run.serial);
    assert!(logged.contains(&format!("\n{t}\n")));
}

#[test]
fn gdb_mode_waits_for_gdb_and_prints_the_command_with_the_kernel_elf() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let run = runner(&["--gdb", "--gdb-port", &port, "--timeout", "1"]);
    // QEMU waits for gdb (-S): the kernel never runs, the timeout ends it.
    run.expect_status(124);
    assert!(!run.serial.contains("tristack 0.1.0"), "kernel ran without gdb:\n{run}");
    let cmd = run.stderr.lines().find(|l| l.trim_start().starts_with("gdb ")).unwrap_or_else(|| panic!("{run}"));
    let elf = cmd.split_whitespace().nth(1).unwrap();
    assert!(cmd.ends_with(&format!("-ex 'target remote :{port}'")), "{cmd}");
    assert!(std::fs::read(elf).unwrap().starts_with(b"\x7fELF"), "{elf} is not the kernel ELF");
}

/// At a terminal (a pseudo-terminal that is the runner's controlling
/// terminal, as for a person running `./x run`): arrow keys edit the line,
/// ↑ recalls it, Ctrl-C cancels a line, ends the foreground program and
/// stops a waiting demo — and never kills QEMU (`signal=off`).
#[test]
fn a_terminal_edits_lines_and_ctrl_c_reaches_the_kernel() {
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_on_terminal(
        &["--timeout", &timeout],
        vec![
            // `echo abc`, ← ←, `X`: the X lands before the b.
            ("tristack> ", Action::Type(b"echo abc\x1b[D\x1b[DX\r".to_vec())),
            // ↑ runs it again; then a half-typed line cancelled; then a program that never ends.
            ("\naXbc", Action::Type(b"\x1b[A\r".to_vec())),
            // After the prompt that follows it: Ctrl-C before the shell is back at
            // its prompt would interrupt the command and flush what was typed.
            ("aXbc\ntristack> ", Action::Type(b"echo never\x03run spin\r".to_vec())),
            ("spinning in user mode until killed", Action::Type(b"\x03".to_vec())),
            ("ended by Ctrl-C", Action::Type(b"nmi wait\r".to_vec())),
            ("Ctrl-C cancels", Action::Type(b"\x03".to_vec())),
            ("cancelled (Ctrl-C)", Action::Type(b"echo still-here; poweroff\r".to_vec())),
        ],
    );
    run.expect_status(0);
    assert!(!run.stderr.contains("terminating on signal"), "Ctrl-C killed QEMU:\n{run}");
    let lines = run.kernel_lines();
    assert_eq!(lines.iter().filter(|l| **l == "aXbc").count(), 2, "the edit and its recall:\n{run}");
    assert!(lines.iter().any(|l| l.starts_with("run: spin[") && l.ends_with("] ended by Ctrl-C (signal 2)")), "{run}");
    run.expect("echo never^C").expect("error: nmi: cancelled (Ctrl-C)").expect("\nstill-here");
    run.expect_not("[D").expect_not("unknown command").expect_not("never\n");
}
