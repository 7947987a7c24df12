//! Running out of stack, handled: the nested block-I/O stack with and
//! without Owens' extra-stack pool, the pool exhausted and resized, an
//! extra stack overflowed; Bird's mixed stack sizes; Sony's stack limit;
//! threads per memory.

use crate::common::*;

/// A number right after `key` in `line`.
fn num_after(line: &str, key: &str) -> u64 {
    let rest = line.split(key).nth(1).unwrap_or_else(|| panic!("no {key:?} in {line:?}"));
    rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

/// `blk-io/N (PID): how: W written, E -EIO; V read back intact, R -EIO, B bad; ...`
fn io_counts(line: &str) -> [u64; 5] {
    let n: Vec<u64> = line
        .split(": ")
        .nth(2)
        .unwrap_or_else(|| panic!("{line:?}"))
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(5)
        .map(|w| w.parse().unwrap())
        .collect();
    [n[0], n[1], n[2], n[3], n[4]]
}

#[test]
fn nested_block_layers_overflow_the_thread_stack_without_the_pool_and_complete_on_extra_stacks_with_it() {
    // 48 layers for the overflow: 40 overflowed by about 3 KiB in every
    // boot here, but once, in a loaded CI run, the deepest point stayed
    // 352 bytes short of the guard (the depth moves with timing).
    let run = boot(
        "blk-stack 48; extra-stacks off; blk-io --blocks 2; echo still up; \
         blk-stack 40; extra-stacks on; blk-io --hold --blocks 4; extra-overflow; poweroff",
    );
    run.expect_status(0);
    run.expect("blk-stack: 40 layers, ").expect("-> mirror(+ram1) -> loop -> integrity -> crypt -> linear(+1) -> ram0");

    // Without the pool: the I/O thread overflows its 16 KiB stack and dies
    // alone; nothing it was told was written is missing.
    let bug = run.line_index("tristack> blk-io --blocks 2");
    let lines = run.kernel_lines();
    assert!(lines[bug..].iter().take(3).any(|l| l.starts_with("BUG: TASK stack guard page was hit at ")), "{run}");
    let killed = line_starting(&run, "blk-io/0 (");
    assert!(killed.contains(": KILLED by an oops: "), "{killed}");
    run.expect("\nstill up\n");

    // With it: the same I/O completes, the data verified, deeper than one
    // stack holds in all (TASK + EXTRA > 16 KiB).
    let done =
        lines_starting(&run, "blk-io/0 (").into_iter().find(|l| l.contains(": done: ")).expect("a run that completed");
    assert_eq!(io_counts(done), [4, 0, 4, 0, 0], "{done}");
    let (task, extra) = (num_after(done, "TASK "), num_after(done, "EXTRA "));
    // The switch came at the threshold (8 KiB); the two parts together are
    // about what a 16 KiB stack holds: 16 320 bytes in a quiet boot here,
    // 15 280 in a loaded CI run (the depth moves with timing).
    assert!(task <= 8192 + 1024 && extra > 0 && task + extra > 16384 - 2048, "{done}");
    assert!(num_after(done, "bytes; ") >= 41, "{done}");
    let switches = lines_starting(&run, "blk-io: extra stacks: ");
    assert!(num_after(switches[1], "extra stacks: ") > 0, "{switches:?}");
    let verify = lines_starting(&run, "blk-io: verify: ");
    assert_eq!(verify[1], "blk-io: verify: 4 blocks reported written: 4 read back intact, 0 -EIO, 0 bad, 0 not read");

    // Held at the disk: ps shows the submitter on an extra stack, its trace
    // runs through the EXTRA stacks back to its own, the pool refuses to
    // shrink under it.
    let row = line_starting(&run, "blk-io/0        S ");
    assert!(row.ends_with(" 16K kthread, on an EXTRA stack"), "{row}");
    let at = run.kernel_lines().iter().position(|l| l.starts_with("bt: blk-io/0 (")).unwrap();
    let trace = trace_from(&run, at);
    let last_leave = trace.iter().rposition(|l| *l == " </EXTRA>").expect("an EXTRA section");
    assert_eq!(trace[0], " <EXTRA>", "{trace:#?}");
    assert!(trace.iter().any(|l| l.contains("RamDisk as tristack::block::bio::BlockDevice>::submit+")), "{trace:#?}");
    assert!(trace[..last_leave].iter().any(|l| l.starts_with(" tristack::block::bio::submit_bio+")), "{trace:#?}");
    assert!(trace[last_leave..].iter().any(|l| l.contains("running_out_of_stack::block_io::io_thread+")), "{trace:#?}");
    let refused = line_starting(&run, "blk-io: extra-stacks 0 while it sleeps: refused: cannot shrink to 0: ");
    assert!(refused.ends_with(" extra stacks are in use"), "{refused}");

    // An extra stack overflowed: its own guard, its own message, the trace
    // crosses back to the task; the reaper gives the stack back.
    run.expect("BUG: EXTRA stack guard page was hit at ");
    let at = run.line_index("tristack> extra-overflow");
    let trace = trace_from(&run, at);
    assert_eq!(trace[0], " <EXTRA>", "{trace:#?}");
    let leave = trace.iter().position(|l| *l == " </EXTRA>").expect("</EXTRA>");
    assert!(trace[leave..].iter().any(|l| l.contains(" tristack::stacks::extra::")), "{trace:#?}");
    let pool = lines_starting(&run, "extra stacks: ");
    let last = pool.last().unwrap();
    assert!(last.starts_with("extra stacks: 4 total, 4 free, 0 in use, "), "{last}");
}

#[test]
fn an_exhausted_pool_fails_submits_with_eio_and_every_block_reported_written_reads_back() {
    let run = boot("extrastacks 1; blk-stack 40; blk-io --threads 6 --blocks 8; extra-stacks; poweroff");
    run.expect_status(0);
    run.expect("extra stacks: 2 total, 2 free, 0 in use,");
    let rows = lines_starting(&run, "blk-io/");
    let counts: Vec<[u64; 5]> = rows.iter().filter(|l| l.contains(": done: ")).map(|l| io_counts(l)).collect();
    assert_eq!(counts.len(), 6, "no thread may die:\n{run}");
    let eio: u64 = counts.iter().map(|c| c[1] + c[3]).sum();
    let written: u64 = counts.iter().map(|c| c[0]).sum();
    assert!(eio > 0, "six threads on two extra stacks must be refused some:\n{run}");
    assert!(counts.iter().all(|c| c[0] + c[1] == 8 && c[4] == 0), "{counts:?}");
    assert!(num_after(line_starting(&run, "blk-io: extra stacks: "), "switches, ") > 0, "{run}");
    // Rate-limited: at most a burst of 10 messages per 5 s.
    let msgs = run.kernel_lines().iter().filter(|l| l.ends_with("and no extra stack free: -EIO")).count();
    assert!((1..=10).contains(&msgs), "{msgs} -EIO messages:\n{run}");
    let verify = line_starting(&run, "blk-io: verify: ");
    assert_eq!(
        verify,
        format!(
            "blk-io: verify: {written} blocks reported written: {written} read back intact, 0 -EIO, 0 bad, 0 not read"
        )
    );
    let pool = lines_starting(&run, "extra stacks: ");
    assert!(pool.last().unwrap().starts_with("extra stacks: 2 total, 2 free, 0 in use, high-water 2, "), "{pool:?}");
}

#[test]
fn mixed_stack_sizes_and_stack_limits_each_fail_with_their_own_message() {
    let run = boot(
        "stack-limit-default 8192; spawn 1; ps; stack-limit-default off; \
         stack-sizes; child-stack-size 8K; spawn 2; spawn --stack-size 32K 1; ps; \
         stack-limit-search deep 12; threads-fit; poweroff",
    );
    run.expect_status(0);
    // Bird: the shallow worker fits 4 KiB, the deep one needs 16.
    run.expect("stack-sizes: shallow-4K: 4 levels on 4096 bytes: done, used ");
    run.expect("stack-sizes: deep-16K: 24 levels on 16384 bytes: done, used ");
    run.expect("stack-sizes: deep-4K: 24 levels on 4096 bytes: overflowed, killed");
    let bug = line_starting(&run, "BUG: TASK stack guard page was hit at ");
    assert!(bug.ends_with("fff)") && hex_after(bug, "..") - hex_after(bug, "(stack is ") == 4095, "{bug}");
    // ps: the default limit, the inherited 8K, the asked-for 32K.
    // By pid (the first worker shows in both ps): the size column follows the CPU.
    let sizes: std::collections::BTreeMap<u32, &str> = lines_starting(&run, "worker-")
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let flags = w.iter().position(|w| *w == "0x00000000").unwrap();
            (w[flags - 2].parse().unwrap(), w[flags + 2])
        })
        .collect();
    assert_eq!(sizes.into_values().collect::<Vec<_>>(), ["L8192", "8K", "8K", "32K"], "{run}");
    // Sony: the search's answer against the usage accounting.
    let found = line_starting(&run, "stack-limit-search: smallest limit that completes: ");
    let (limit, used) = (num_after(found, "completes: "), num_after(found, "full stack: "));
    assert!(limit + 16 >= used && limit <= used + 64, "{found}");
    let exceeded = lines_starting(&run, "BUG: TASK stack limit of ");
    let said = lines_starting(&run, "stack-limit-search: limit ");
    assert_eq!(exceeded.len(), said.iter().filter(|l| l.ends_with(": exceeded")).count(), "{run}");
    assert!(!exceeded.is_empty() && exceeded.iter().all(|l| num_after(l, "limit of ") < limit), "{exceeded:?}");
    // threads-fit: a 4 KiB thread costs a quarter of a 16 KiB one.
    let fit: Vec<u64> = ["  4 KiB", " 16 KiB"]
        .iter()
        .map(|p| line_starting(&run, p).split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert!(fit[0] > 3 * fit[1] && fit[1] > 10_000, "{fit:?}\n{run}");
}

#[test]
fn bad_arguments_to_the_stack_commands_say_what_is_valid_and_the_shell_carries_on() {
    let cases = [
        ("blk-io", "error: blk-io: no block device: run blk-stack LAYERS first"),
        ("stack-limit-search blk-io", "error: stack-limit-search: no block device: run blk-stack LAYERS first"),
        ("blk-stack 65", "error: blk-stack: LAYERS must be a number from 0 to 64, not '65'"),
        ("spawn --stack-size 12K 1", "error: spawn: stack size must be one of 4K, 8K, 16K, 32K, not '12K'"),
        ("spawn --stack-limit 100 1", "error: spawn: the stack limit must be a number from 512 to 12288, not '100'"),
        ("spawn --stack-limit 4100 1", "error: spawn: the stack limit must be a multiple of 16, not 4100"),
        (
            "spawn --stack-size 8K --stack-limit 4096 1",
            "error: spawn: a stack limit goes inside a 16K stack; not with --stack-size",
        ),
        ("extra-stacks 65", "error: extra-stacks: N must be a number from 0 to 64, not '65'"),
        ("extra-stacks threshold x", "error: extra-stacks: BYTES must be a number from 0 to 16384, not 'x'"),
        ("extra-stacks maybe", "error: extra-stacks: usage: extra-stacks [N | on | off | threshold BYTES] (N 0 to 64)"),
        ("child-stack-size 3K", "error: child-stack-size: stack size must be one of 4K, 8K, 16K, 32K, not '3K'"),
        ("child-stack-size 999 8K", "error: child-stack-size: no task 999 (see ps)"),
        ("stack-limit-search foo", "error: stack-limit-search: usage: stack-limit-search deep LEVELS | blk-io"),
        (
            "stack-limit-default 5",
            "error: stack-limit-default: the stack limit must be a number from 512 to 12288, not '5'",
        ),
        ("extrastacks", "error: extrastacks: usage: extrastacks PER_CPU [THRESHOLD]"),
        ("blk-io --threads 0", "error: blk-io: T must be a number from 1 to 16, not '0'"),
    ];
    let mut typed = String::new();
    for (cmd, _) in &cases {
        typed.push_str(cmd);
        typed.push('\r');
    }
    typed.push_str("echo carried on\rpoweroff\r");
    let timeout = TIMEOUT_SECS.to_string();
    let run = runner_steps(&["--timeout", &timeout], None, vec![("tristack> ", Action::Type(typed.into_bytes()))]);
    run.expect_status(0);
    for (cmd, error) in cases {
        assert!(run.serial.contains(&format!("tristack> {cmd}\n{error}")), "{cmd:?} should answer {error:?}:\n{run}");
    }
    run.expect("\ncarried on\n");
}

/// The pool's threshold is stated for a 16 KiB stack; what decides is the
/// room it leaves below RSP. On 8 and 4 KiB stacks the nested submit
/// switches to extra stacks early enough instead of running into the guard
/// page first (with "8 KiB used" as the rule, the 8 KiB thread overflowed
/// before the pool stepped in: 0 switches).
#[test]
fn small_stacks_switch_to_extra_stacks_before_they_overflow() {
    let run = boot(
        "child-stack-size 8K; blk-stack 40; blk-io --threads 1 --blocks 2; child-stack-size 4K; \
         blk-io --threads 1 --blocks 2; poweroff",
    );
    run.expect_status(0).expect_not("guard page was hit").expect_not("Oops");
    let done = lines_starting(&run, "blk-io/0 (");
    let done: Vec<&&str> = done.iter().filter(|l| l.contains("): done: ")).collect();
    assert_eq!(done.len(), 2, "{run}");
    assert!(done.iter().all(|l| l.contains("done: 2 written, 0 -EIO; 2 read back intact, 0 -EIO, 0 bad")), "{done:#?}");
    let switches = lines_starting(&run, "blk-io: extra stacks: ");
    assert!(switches.iter().all(|l| !l.starts_with("blk-io: extra stacks: 0 switches")), "{switches:#?}");
}
