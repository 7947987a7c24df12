//! The console blocks of a Markdown file: fenced blocks that show a
//! session (`tristack> CMD` lines, or a `$ ./x ...` line) with the output
//! that follows each command.
//!
//! A fence's info string says how to run it: runner options
//! (```` ```console --smp 4 ````, default `--smp 2`); `fresh` for a block
//! that needs a boot of its own (blocks of one file otherwise run in one
//! boot, in order, each seeing what the ones before it did); or `no-run: WHY`
//! for a block that cannot be run by a test (keys typed live, KVM, a monitor
//! command at the right moment) — those are counted, with their reasons.

/// One command as shown, with the output lines shown after it.
#[derive(Debug, Clone)]
pub struct Step {
    /// The command line as typed (`echo hi`), or the `./x` line's words after `./x`.
    pub command: String,
    pub expected: Vec<String>,
    /// Line numbers (0-based) in the file of the expected lines: `first..end`.
    pub lines: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
pub enum Session {
    /// `tristack> ` lines, typed at the prompt of one boot with these runner options;
    /// `boot` is what the block shows before its first prompt (from the kernel's banner).
    Prompt { options: Vec<String>, fresh: bool, boot: Option<Step>, steps: Vec<Step> },
    /// `$ ./x WORDS` and the output shown after it.
    X(Step),
}

#[derive(Debug)]
pub struct Block {
    /// 1-based line of the opening fence, for messages.
    pub at: usize,
    pub session: Result<Session, String>,
}

/// Every session block of `text` (blocks without a command are not sessions).
pub fn parse(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i + 1;
        let end = (start..lines.len()).find(|&k| lines[k].starts_with("```")).unwrap_or(lines.len());
        let body = &lines[start..end];
        let is_session = body.iter().any(|l| l.starts_with("tristack> ") || l.starts_with("$ ./x "));
        if is_session {
            let info = info.trim();
            let session = match info.split_once("no-run:") {
                Some((_, why)) => Err(why.trim().to_string()),
                None => Ok(session(body, start, info)),
            };
            blocks.push(Block { at: i + 1, session });
        }
        i = end + 1;
    }
    blocks
}

fn session(body: &[&str], first_line: usize, info: &str) -> Session {
    // Output lines run to the next command line.
    let steps_from = |k0: usize, prefix: &str| {
        let mut steps = Vec::new();
        let mut k = k0;
        while k < body.len() {
            let command = body[k].strip_prefix(prefix).expect("a command line").trim().to_string();
            let out_end = (k + 1..body.len()).find(|&j| body[j].starts_with(prefix)).unwrap_or(body.len());
            let expected = body[k + 1..out_end].iter().map(|s| s.to_string()).collect();
            steps.push(Step { command, expected, lines: first_line + k + 1..first_line + out_end });
            k = out_end;
        }
        steps
    };
    if body[0].starts_with("$ ./x ") {
        let mut steps = steps_from(0, "$ ./x ");
        assert_eq!(steps.len(), 1, "one `$ ./x` line per block (line {})", first_line);
        return Session::X(steps.remove(0));
    }
    let first_prompt = body.iter().position(|l| l.starts_with("tristack> ")).unwrap();
    let boot = (first_prompt > 0).then(|| Step {
        command: String::new(),
        expected: body[..first_prompt].iter().map(|s| s.to_string()).collect(),
        lines: first_line..first_line + first_prompt,
    });
    let mut options: Vec<String> =
        info.split_whitespace().skip_while(|w| !w.starts_with("--")).map(String::from).collect();
    if !options.iter().any(|o| o == "--smp") {
        options.extend(["--smp".to_string(), "2".to_string()]);
    }
    let fresh = info.split_whitespace().any(|w| w == "fresh");
    Session::Prompt { options, fresh, boot, steps: steps_from(first_prompt, "tristack> ") }
}
