//! The kernel-symbol reader (`debug::symbols`) on malformed ELF images: an
//! error, or a table whose lookups are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristack::debug::symbols::SymbolTable;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = SymbolTable::parse(data) else { return };
    assert!(!table.is_empty());
    let (start, end) = table.text_range().expect("a non-empty table has a range");
    // Look up addresses taken from the input and around the text range.
    let probes = data.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap())).take(64);
    for addr in probes.chain([start, end.wrapping_sub(1), end, start.wrapping_sub(1), 0, u64::MAX]) {
        if let Some(r) = table.lookup(addr) {
            assert!(r.offset < r.symbol.size, "{r}");
            assert_eq!(r.symbol.addr + r.offset, addr);
            assert!(table.find(&r.symbol.name).is_some());
            let _ = r.to_string();
        }
    }
});
