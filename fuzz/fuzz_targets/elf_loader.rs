//! The user-program ELF loader's checks (`user::elf::plan`): whatever the
//! bytes, either an error or a plan the kernel can map safely.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristack::layout::{USER_SEGMENTS_END, USER_TEXT_BASE};
use tristack::user::elf::plan;

fuzz_target!(|data: &[u8]| {
    let plan = match plan(data) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(!plan.segments.is_empty());
    for (i, s) in plan.segments.iter().enumerate() {
        assert!(s.file_size <= s.memsz);
        assert!(s.file_offset.checked_add(s.file_size).is_some_and(|end| end <= data.len() as u64));
        assert!(s.vaddr >= USER_TEXT_BASE && s.vaddr.checked_add(s.memsz).is_some_and(|end| end <= USER_SEGMENTS_END));
        for o in &plan.segments[..i] {
            let (a, b) = (o.pages(), s.pages());
            assert!(a.1 <= b.0 || b.1 <= a.0, "overlapping pages {a:x?} {b:x?}");
        }
    }
    assert!(plan.segments.iter().any(|s| s.executable && (s.vaddr..s.vaddr + s.memsz).contains(&plan.entry)));
    let (lo, hi) = plan.span();
    assert!(lo < hi);
});
