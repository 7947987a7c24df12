//! Booting the kernel through the real runner binary and looking at what it said.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The runner, built by cargo as an artifact dependency.
pub const RUNNER: &str = env!("CARGO_BIN_FILE_BOOT_IMAGE_boot-image");

/// Generous: tests run in parallel on a 2-core machine under TCG.
pub const TIMEOUT_SECS: u64 = 90;

#[derive(Debug)]
pub struct Run {
    /// Runner exit status (None: killed by a signal).
    pub status: Option<i32>,
    /// The serial console.
    pub serial: String,
    /// The runner's own messages.
    pub stderr: String,
}

impl Run {
    /// Panic with the whole console unless `needle` was printed.
    #[track_caller]
    pub fn expect(&self, needle: &str) -> &Self {
        assert!(self.serial.contains(needle), "expected {needle:?} on the console:\n{self}");
        self
    }

    #[track_caller]
    pub fn expect_not(&self, needle: &str) -> &Self {
        assert!(!self.serial.contains(needle), "did not expect {needle:?}:\n{self}");
        self
    }

    /// Panic if some console line is exactly `line` (a command's output, not its echo).
    #[track_caller]
    pub fn expect_no_line(&self, line: &str) -> &Self {
        assert!(!self.kernel_lines().contains(&line), "did not expect the line {line:?}:\n{self}");
        self
    }

    #[track_caller]
    pub fn expect_status(&self, status: i32) -> &Self {
        assert_eq!(self.status, Some(status), "runner exit status:\n{self}");
        self
    }

    /// The console lines after the kernel's own banner (skips bootloader logs).
    pub fn kernel_lines(&self) -> Vec<&str> {
        let start = self.serial.find("tristack ").unwrap_or(0);
        self.serial[start..].lines().collect()
    }

    /// Index of the first kernel line equal to `line`, or panic.
    #[track_caller]
    pub fn line_index(&self, line: &str) -> usize {
        self.kernel_lines().iter().position(|l| *l == line).unwrap_or_else(|| panic!("no line {line:?}:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "--- status {:?}\n--- serial\n{}\n--- stderr\n{}", self.status, self.serial, self.stderr)
    }
}

/// Run the runner with `args` (options, then `--`, then the command line).
pub fn runner(args: &[&str]) -> Run {
    runner_steps(args, None, Vec::new())
}

/// Boot with a kernel command line and the default test timeout.
pub fn boot(cmdline: &str) -> Run {
    let timeout = TIMEOUT_SECS.to_string();
    runner(&["--timeout", &timeout, "--", cmdline])
}

/// Boot with `cpus` CPUs, a command line and the default test timeout.
pub fn boot_smp(cpus: u32, cmdline: &str) -> Run {
    let (timeout, n) = (TIMEOUT_SECS.to_string(), cpus.to_string());
    runner(&["--smp", &n, "--timeout", &timeout, "--", cmdline])
}

/// `boot_smp` under the runner's `--singlestep`: from the kernel's first
/// line on, one instruction per translated block, so NMIs and IRQs land
/// between any two instructions (race tests; TCG otherwise delivers them
/// only between blocks, and a race window inside one never sees them).
pub fn boot_smp_singlestep(cpus: u32, cmdline: &str) -> Run {
    let (timeout, n) = (TIMEOUT_SECS.to_string(), cpus.to_string());
    runner(&["--singlestep", "--smp", &n, "--timeout", &timeout, "--", cmdline])
}

/// What a test does once the console shows a given text.
pub enum Action {
    /// Type bytes into the serial port.
    Type(Vec<u8>),
    /// Send a command to QEMU's human monitor (the runner gets `--monitor`).
    Monitor(String),
    /// Let the guest run a while (only to make an event likely to land in
    /// a given state; never to assert on time).
    Pause(Duration),
}

/// General form: `cmdline` as raw bytes (may be non-UTF-8); each step waits
/// until its text has appeared on the console (after the previous step's)
/// and then acts.
pub fn runner_steps(args: &[&str], cmdline: Option<&[u8]>, steps: Vec<(&str, Action)>) -> Run {
    runner_input(args, cmdline, steps, false)
}

/// `runner_steps` with the runner's stdin a pseudo-terminal that is its
/// controlling terminal, as when a person runs `./x run`: the terminal's
/// line discipline, Ctrl-C's SIGINT included, is in the way unless QEMU
/// takes it out.
pub fn runner_on_terminal(args: &[&str], steps: Vec<(&str, Action)>) -> Run {
    runner_input(args, None, steps, true)
}

fn runner_input(args: &[&str], cmdline: Option<&[u8]>, steps: Vec<(&str, Action)>, terminal: bool) -> Run {
    use std::os::unix::ffi::OsStrExt;
    let monitor = std::env::temp_dir().join(format!("{}.sock", token("tristack-monitor")));
    let mut cmd = Command::new(RUNNER);
    if steps.iter().any(|(_, a)| matches!(a, Action::Monitor(_))) {
        cmd.arg("--monitor").arg(&monitor);
    }
    cmd.args(args);
    if let Some(bytes) = cmdline {
        cmd.arg("--").arg(std::ffi::OsStr::from_bytes(bytes));
    }
    let pty = terminal.then(pty::open);
    match &pty {
        Some((_, follower)) => {
            cmd.stdin(follower.try_clone().expect("dup the terminal"));
            pty::make_controlling_terminal(&mut cmd);
        }
        None => {
            cmd.stdin(Stdio::piped());
        }
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the runner");
    let mut stdin: Option<Box<dyn Write>> = match pty {
        Some((leader, _)) => Some(Box::new(leader)),
        None => child.stdin.take().map(|s| Box::new(s) as Box<dyn Write>),
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            let _ = tx.send(buf[..n].to_vec());
        }
        all
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut seen = Vec::new();
    let mut from = 0;
    let deadline = Instant::now() + Duration::from_secs(TIMEOUT_SECS);
    for (wait_for, action) in steps {
        // Wait for the text (the UART drops what arrives before the kernel set it up).
        let found = loop {
            if let Some(i) = String::from_utf8_lossy(&seen[from..]).find(wait_for) {
                break Some(from + i + wait_for.len());
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(chunk) => seen.extend(chunk),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => break None,
            }
        };
        let Some(end) = found else { break };
        from = end;
        match action {
            Action::Type(bytes) => {
                if let Some(s) = stdin.as_mut() {
                    let _ = s.write_all(&bytes);
                    let _ = s.flush();
                }
            }
            Action::Monitor(command) => monitor_command(&monitor, &command),
            Action::Pause(d) => std::thread::sleep(d),
        }
    }
    let status = child.wait().expect("wait for the runner");
    drop(stdin);
    let _ = std::fs::remove_file(&monitor);
    let serial = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    Run { status: status.code(), serial, stderr: err_reader.join().unwrap() }
}

/// Run one command on QEMU's human monitor and wait for its next prompt.
fn monitor_command(socket: &std::path::Path, command: &str) {
    use std::os::unix::net::UnixStream;
    let mut stream = UnixStream::connect(socket).expect("connect to the QEMU monitor");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let read_prompt = |s: &mut UnixStream| {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("(qemu) ") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    read_prompt(&mut stream);
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    let answer = read_prompt(&mut stream);
    eprintln!("monitor: {command} -> {:?}", answer.lines().skip(1).collect::<Vec<_>>());
}

/// A fresh token to echo, so a test can only pass if the command really ran.
pub fn token(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{tag}-{:x}", nanos ^ (std::process::id() as u128) << 64)
}

/// Deterministic pseudo-random bytes (xorshift), printable in failure messages by seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `nm -C -S` of the kernel ELF: demangled name -> (address, size).
pub fn kernel_nm() -> std::collections::HashMap<String, (u64, u64)> {
    let elf = runner(&["--kernel-elf"]).serial.trim().to_string();
    let out = Command::new("nm").args(["-C", "-S", &elf]).output().expect("run nm (binutils) on the kernel ELF");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.splitn(4, ' ');
            let (addr, size, _kind, name) = (w.next()?, w.next()?, w.next()?, w.next()?);
            Some((name.to_string(), (u64::from_str_radix(addr, 16).ok()?, u64::from_str_radix(size, 16).ok()?)))
        })
        .collect()
}

/// Every plain (frame-pointer-proven, no `? `) ` name+0xoff/0xlen` trace
/// line: the function exists in `nm` with that size and the offset lies
/// inside it. Returns those names in order.
#[track_caller]
pub fn symbolized_frames(lines: &[&str]) -> Vec<String> {
    let nm = kernel_nm();
    lines
        .iter()
        .filter(|l| !l.starts_with(" ? "))
        .filter_map(|l| {
            let l = l.strip_prefix(' ')?;
            let (name, rest) = l.rsplit_once('+')?;
            let (off, len) = rest.split_once('/')?;
            let (off, len) = (u64::from_str_radix(&off[2..], 16).ok()?, u64::from_str_radix(&len[2..], 16).ok()?);
            let (_, size) = nm.get(name).unwrap_or_else(|| panic!("{name} is not in nm's output"));
            assert_eq!(*size, len, "{l}: nm says size {size:#x}");
            assert!(off <= len, "{l}: offset past the end");
            Some(name.to_string())
        })
        .collect()
}

/// A hex number as the kernel prints it (with or without `0x`).
pub fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

/// The hex number right after `key` in `line`.
pub fn hex_after(line: &str, key: &str) -> u64 {
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{key:?} not in {line:?}")) + key.len()..];
    hex(rest.split(|c: char| !c.is_ascii_hexdigit() && c != 'x').next().unwrap())
}

/// The first console line starting with `prefix`.
#[track_caller]
pub fn line_starting<'a>(run: &'a Run, prefix: &str) -> &'a str {
    run.kernel_lines()
        .into_iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}:\n{run}"))
}

/// Every console line starting with `prefix`.
pub fn lines_starting<'a>(run: &'a Run, prefix: &str) -> Vec<&'a str> {
    run.kernel_lines().into_iter().filter(|l| l.starts_with(prefix)).collect()
}

/// The trace lines after the first `Call Trace:` at or after kernel line `from`.
#[track_caller]
pub fn trace_from(run: &Run, from: usize) -> Vec<&str> {
    let lines = run.kernel_lines();
    let start =
        lines[from..].iter().position(|l| *l == "Call Trace:").unwrap_or_else(|| panic!("no trace:\n{run}")) + from + 1;
    lines[start..].iter().take_while(|l| l.starts_with(' ')).copied().collect()
}

/// Pseudo-terminals for `runner_on_terminal` (libc: openpty, setsid, TIOCSCTTY).
mod pty {
    use std::fs::File;
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;

    /// A new pseudo-terminal: (the side a test types into, the side the runner reads).
    pub fn open() -> (File, File) {
        let (mut leader, mut follower) = (0, 0);
        // SAFETY: openpty writes two new descriptors into the ints it is given.
        let rc = unsafe {
            libc::openpty(&mut leader, &mut follower, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are new and owned by nothing else.
        unsafe { (File::from_raw_fd(leader), File::from_raw_fd(follower)) }
    }

    /// The child starts a session whose controlling terminal is its stdin,
    /// so the terminal's Ctrl-C signals it (and QEMU, in its process group).
    pub fn make_controlling_terminal(cmd: &mut std::process::Command) {
        // SAFETY: setsid and ioctl are async-signal-safe; nothing is allocated.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
