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

/// Suites of layers above the `ktest` command (boot's), handed down at init.
static HANDED_DOWN: crate::sync::IrqMutex<alloc::vec::Vec<&'static [KTest]>> =
    crate::sync::IrqMutex::new(alloc::vec::Vec::new());

/// Add `suite` to the ones the `ktest` command runs first (a layer above
/// the command registers its own this way).
pub fn hand_down(suite: &'static [KTest]) {
    HANDED_DOWN.lock().push(suite);
}

/// The suites handed down, in the order they came.
pub fn handed_down() -> alloc::vec::Vec<&'static [KTest]> {
    HANDED_DOWN.lock().clone()
}

/// Run the tests of `suites` whose name contains `filter`; returns (passed,
/// failed). The caller (the `ktest` command) lists the suites, so this
/// runner names no module above it.
pub fn run(suites: &[&[KTest]], filter: Option<&str>) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for t in suites.iter().copied().flatten().filter(|t| filter.is_none_or(|f| t.name.contains(f))) {
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
