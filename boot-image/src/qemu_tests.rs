//! The QEMU command line the runner builds, for each option.

use super::*;
use clap::Parser;

fn args_of(argv: &[&str]) -> Vec<String> {
    let cli = Cli::try_parse_from(argv).unwrap();
    qemu_args(&cli, Path::new("/img"), Some(Path::new("/cmd"))).into_iter().map(|s| s.into_string().unwrap()).collect()
}

#[test]
fn defaults_are_tcg_two_cpus_256_mib() {
    let a = args_of(&["run"]);
    let s = a.join(" ");
    assert!(s.contains("-accel tcg"), "{s}");
    assert!(s.contains("-smp 2"), "{s}");
    assert!(s.contains("-m 256M"), "{s}");
    assert!(
        s.contains(
            "-chardev stdio,id=ttyS0,mux=on,signal=off -serial chardev:ttyS0 -echr 0x1d -display none -no-reboot"
        ),
        "{s}"
    );
    assert!(s.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"), "{s}");
    assert!(s.contains("name=opt/tristack/cmdline,file=/cmd"), "{s}");
    assert!(!s.contains("-S"), "{s}");
}

#[test]
fn options_reach_qemu() {
    let a = args_of(&[
        "run",
        "--accel",
        "kvm",
        "--smp",
        "4",
        "--mem",
        "512",
        "--gdb",
        "--monitor",
        "/m.sock",
        "--qemu-arg",
        "-d",
        "--qemu-arg",
        "int",
    ]);
    let s = a.join(" ");
    assert!(s.contains("-accel kvm -smp 4 -m 512M"), "{s}");
    assert!(s.contains("-cpu max,-arch-capabilities -accel kvm"), "{s}");
    assert!(s.contains("-monitor unix:/m.sock,server=on,wait=off"), "{s}");
    assert!(s.contains("-gdb tcp::1234 -S"), "{s}");
    assert!(s.ends_with("-d int"), "{s}");
}

#[test]
fn icount_counts_instructions_and_refuses_kvm() {
    let s = args_of(&["run", "--icount"]).join(" ");
    assert!(s.contains("-accel tcg -icount shift=0,sleep=off"), "{s}");
    assert!(s.contains("name=opt/tristack/clock,string=instructions"), "{s}");
    assert!(!args_of(&["run"]).join(" ").contains("-icount"));
    let kvm = Cli::try_parse_from(["run", "--icount", "--accel", "kvm"]).unwrap();
    assert!(check(&kvm).unwrap_err().contains("--icount needs --accel tcg"));
    assert!(check(&Cli::try_parse_from(["run", "--icount"]).unwrap()).is_ok());
}

#[test]
fn singlestep_gives_one_instruction_per_block_and_refuses_kvm() {
    let on = args_of(&["run", "--singlestep"]).join(" ");
    assert!(on.contains("-mon chardev=tristack-singlestep,mode=readline"), "{on}");
    assert!(!args_of(&["run"]).join(" ").contains("tristack-singlestep"));
    let kvm = Cli::try_parse_from(["run", "--singlestep", "--accel", "kvm"]).unwrap();
    assert!(check(&kvm).unwrap_err().contains("--singlestep needs --accel tcg"));
}

#[test]
fn timestamps_start_every_line() {
    let t = Duration::from_millis(12_345);
    assert_eq!(stamped(b"a\nb", b'\n', t), b"[  12.345] a\n[  12.345] b");
    assert_eq!(stamped(b"c\n", b'x', t), b"c\n");
}

#[test]
fn bad_flags_are_usage_errors() {
    for bad in [
        &["run", "--accel", "hvf"][..],
        &["run", "--smp", "0"],
        &["run", "--smp", "x"],
        &["run", "--mem", "1"],
        &["run", "--frobnicate"],
    ] {
        let err = Cli::try_parse_from(bad).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{bad:?}");
    }
}

#[test]
fn cmdline_after_options_or_double_dash() {
    let a = Cli::try_parse_from(["run", "--smp", "4", "echo", "--smp", "x"]).unwrap();
    assert_eq!(a.smp, 4);
    assert_eq!(joined_cmdline(&a.cmdline), b"echo --smp x");
    let b = Cli::try_parse_from(["run", "--", "--not-an-option"]).unwrap();
    assert_eq!(joined_cmdline(&b.cmdline), b"--not-an-option");
}

#[test]
fn cmdline_words_are_joined_with_spaces() {
    let cli = Cli::try_parse_from(["run", "--", "echo", "a,b;", "poweroff"]).unwrap();
    assert_eq!(joined_cmdline(&cli.cmdline), b"echo a,b; poweroff");
}
