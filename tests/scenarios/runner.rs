//! The runner (README "The runner"): its flags, its exit statuses, what it
//! adds to the serial log, and the modes that do not boot a command line.
//! Not a kernel chapter, so not a demo: the host side of every boot.

use crate::common::*;

#[test]
fn timeout_kills_qemu_and_exits_124() {
    let t = token("waiting");
    // Long enough to boot even when every core is busy with other scenarios.
    let run = runner(&["--timeout", "10", "--", &format!("echo {t}")]);
    run.expect_status(124).expect(&t);
    assert!(run.serial.trim_end().ends_with("tristack>"), "shell should be waiting:\n{run}");
    assert!(run.stderr.contains("timeout: killed QEMU after 10 s (--timeout 10)"), "{run}");
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
    let run = runner(&["--gdb", "--timeout", "5"]);
    // QEMU waits for gdb (-S): the kernel never runs, the timeout ends it.
    run.expect_status(124);
    assert!(!run.serial.contains("tristack 0.1.0"), "kernel ran without gdb:\n{run}");
    let cmd = run.stderr.lines().find(|l| l.trim_start().starts_with("gdb ")).unwrap_or_else(|| panic!("{run}"));
    let elf = cmd.split_whitespace().nth(1).unwrap();
    assert!(cmd.ends_with("-ex 'target remote :1234'"), "{cmd}");
    assert!(std::fs::read(elf).unwrap().starts_with(b"\x7fELF"), "{elf} is not the kernel ELF");
}
