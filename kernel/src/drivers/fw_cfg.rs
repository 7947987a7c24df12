//! QEMU's firmware configuration device: how the kernel command line arrives.
//!
//! The runner passes `-fw_cfg name=opt/tristack/cmdline,file=...`. The guest
//! selects the file directory (key 0x19), finds the entry by name and reads
//! its bytes from the data port. Directory parsing is pure and host-tested;
//! the port I/O is bare-metal only.

/// The fw_cfg file holding the kernel command line.
pub const CMDLINE_FILE: &str = "opt/tristack/cmdline";

/// One entry of the fw_cfg file directory (all fields big-endian on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u32,
    pub select: u16,
}

/// Size of one directory entry: u32 size, u16 select, u16 reserved, name[56].
pub const DIR_ENTRY_LEN: usize = 64;

/// Parse a raw directory entry; returns its name (NUL-trimmed) and entry.
pub fn parse_dir_entry(raw: &[u8; DIR_ENTRY_LEN]) -> (&[u8], FileEntry) {
    let size = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let select = u16::from_be_bytes([raw[4], raw[5]]);
    let name = &raw[8..];
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    (&name[..len], FileEntry { size, select })
}

#[cfg(target_os = "none")]
mod io {
    use super::*;
    use alloc::vec::Vec;
    use x86_64::instructions::port::Port;

    const SELECTOR_PORT: u16 = 0x510;
    const DATA_PORT: u16 = 0x511;
    const KEY_SIGNATURE: u16 = 0x0000;
    const KEY_FILE_DIR: u16 = 0x0019;

    fn select(key: u16) {
        // SAFETY: 0x510 is the fw_cfg selector on QEMU's PC machines; selecting
        // a key only changes what the data port returns.
        unsafe { Port::<u16>::new(SELECTOR_PORT).write(key) };
    }

    fn read(buf: &mut [u8]) {
        let mut port = Port::<u8>::new(DATA_PORT);
        for b in buf {
            // SAFETY: reading the fw_cfg data port has no side effect beyond
            // advancing the device's offset in the selected item.
            *b = unsafe { port.read() };
        }
    }

    /// Whether fw_cfg is present (signature "QEMU").
    pub fn present() -> bool {
        select(KEY_SIGNATURE);
        let mut sig = [0u8; 4];
        read(&mut sig);
        &sig == b"QEMU"
    }

    /// The contents of the named fw_cfg file, or `None` if there is none.
    pub fn read_file(name: &str) -> Option<Vec<u8>> {
        if !present() {
            return None;
        }
        select(KEY_FILE_DIR);
        let mut count = [0u8; 4];
        read(&mut count);
        let mut found = None;
        for _ in 0..u32::from_be_bytes(count) {
            let mut raw = [0u8; DIR_ENTRY_LEN];
            read(&mut raw);
            let (entry_name, entry) = parse_dir_entry(&raw);
            if entry_name == name.as_bytes() {
                found = Some(entry);
            }
        }
        let entry = found?;
        let mut data = alloc::vec![0u8; entry.size as usize];
        select(entry.select);
        read(&mut data);
        Some(data)
    }
}

#[cfg(target_os = "none")]
pub use io::{present, read_file};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_entries_are_big_endian_and_nul_terminated() {
        let mut raw = [0u8; DIR_ENTRY_LEN];
        raw[..4].copy_from_slice(&0x1234u32.to_be_bytes());
        raw[4..6].copy_from_slice(&0x0021u16.to_be_bytes());
        raw[8..8 + CMDLINE_FILE.len()].copy_from_slice(CMDLINE_FILE.as_bytes());
        let (name, entry) = parse_dir_entry(&raw);
        assert_eq!(name, CMDLINE_FILE.as_bytes());
        assert_eq!(entry, FileEntry { size: 0x1234, select: 0x21 });
    }

    #[test]
    fn a_full_length_name_is_not_overrun() {
        let raw = [b'a'; DIR_ENTRY_LEN];
        assert_eq!(parse_dir_entry(&raw).0.len(), 56);
    }
}
