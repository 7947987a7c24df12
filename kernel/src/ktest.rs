//! In-kernel tests: things only real hardware state can show (page tables,
//! the direct map, the running kernel's addresses). Run by the `ktest`
//! command; each prints `ktest <name> ... ok|FAILED` and the run ends with
//! `N passed, M failed`.

use alloc::string::String;

pub type KResult = Result<(), String>;

/// Fail the current ktest with a message unless `cond` holds.
#[macro_export]
macro_rules! kcheck {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{} ({}:{})", format_args!($($fmt)+), file!(), line!()));
        }
    };
}

pub struct KTest {
    pub name: &'static str,
    pub run: fn() -> KResult,
}

/// Every module's ktests, in the order they run: memory first, then each
/// kind of stack, then what is built on them. Each module declares its own
/// `KTESTS` next to the code it tests; this list only collects them.
fn all() -> impl Iterator<Item = &'static KTest> {
    let mechanisms: [&[KTest]; 8] = [
        crate::boot::ktests::KTESTS,
        crate::mm::ktests::KTESTS,
        crate::stacks::exception::ktests::KTESTS,
        crate::stacks::thread::ktests::KTESTS,
        crate::stacks::irq::ktests::KTESTS,
        crate::softirq::ktests::KTESTS,
        crate::smp::ktests::KTESTS,
        crate::sched::ktests::KTESTS,
    ];
    mechanisms.into_iter().chain(crate::demos::KTESTS.iter().copied()).flatten()
}

/// Run the tests whose name contains `filter`; returns (passed, failed).
pub fn run(filter: Option<&str>) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for t in all().filter(|t| filter.is_none_or(|f| t.name.contains(f))) {
        // The verdict comes after the run, so whatever the test printed
        // (demos do) never splits the verdict line.
        match (t.run)() {
            Ok(()) => {
                crate::println!("ktest {} ... ok", t.name);
                passed += 1;
            }
            Err(why) => {
                crate::println!("ktest {} ... FAILED: {why}", t.name);
                failed += 1;
            }
        }
    }
    crate::println!("{passed} passed, {failed} failed");
    (passed, failed)
}
