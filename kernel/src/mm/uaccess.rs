//! User-pointer checks (Linux `access_ok`), pure so the host tests them.
//! The copy itself (`mm::address_space`) then checks every page's mapping
//! before reading or writing a byte: no user pointer is ever dereferenced.

use crate::layout::USER_TOP;

/// The end of `[va, va + len)` if the whole range lies in user space and
/// does not wrap (Linux `access_ok`: `size <= TASK_SIZE_MAX && addr <=
/// TASK_SIZE_MAX - size`).
pub fn user_range(va: u64, len: u64) -> Option<u64> {
    (len <= USER_TOP && va <= USER_TOP - len).then(|| va + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_inside_user_space_pass() {
        assert_eq!(user_range(0x40_0000, 16), Some(0x40_0010));
        assert_eq!(user_range(USER_TOP - 8, 8), Some(USER_TOP));
        assert_eq!(user_range(0x1234, 0), Some(0x1234));
    }

    #[test]
    fn kernel_wrapping_and_oversized_ranges_fail() {
        assert_eq!(user_range(0xffff_ffff_8000_0000, 8), None, "kernel address");
        assert_eq!(user_range(USER_TOP - 8, 9), None, "crosses the top");
        assert_eq!(user_range(USER_TOP, 1), None, "the unmapped top page");
        assert_eq!(user_range(0x40_0000, u64::MAX), None, "wraps");
        assert_eq!(user_range(u64::MAX, 1), None);
        assert_eq!(user_range(0x8000_0000_0000_0000, 8), None, "non-canonical");
    }
}
