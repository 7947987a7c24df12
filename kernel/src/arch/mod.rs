//! The architecture door: everything that names an x86 register or
//! instruction lives in `arch/x86_64/` and is re-exported from here.

pub mod x86_64;

pub use self::x86_64::*;
