//! The ELF loader's checks (Linux `load_elf_binary`), pure so the host
//! tests them with malformed images. Parsing is the `object` crate's; this
//! module decides what may be mapped: an x86-64 static executable whose
//! loadable segments lie in user space, do not overlap, and whose entry is
//! in an executable segment. The kernel maps the plan (`user::process`).

use alloc::vec::Vec;

use object::elf::{ELFCLASS64, EM_X86_64, ET_EXEC, PF_W, PF_X, PT_INTERP, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::Endianness;

use crate::layout::{PAGE_SIZE, USER_SEGMENTS_END, USER_TEXT_BASE};

/// One loadable segment: `file` bytes go at `vaddr`, the rest of `memsz`
/// is zero (bss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub writable: bool,
    pub executable: bool,
}

impl Segment {
    /// The page-aligned range the segment occupies.
    pub fn pages(&self) -> (u64, u64) {
        (self.vaddr & !(PAGE_SIZE - 1), (self.vaddr + self.memsz).next_multiple_of(PAGE_SIZE))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

impl Plan {
    /// The lowest and highest address of any segment (for `segfault ... in PROG[BASE+SIZE]`).
    pub fn span(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.pages().0).min().unwrap_or(0);
        let hi = self.segments.iter().map(|s| s.pages().1).max().unwrap_or(0);
        (lo, hi)
    }
}

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file the `object` crate can read (truncated, bad magic...).
    Malformed(object::Error),
    NotX86_64,
    /// Not `ET_EXEC` (tristack loads static, non-PIE executables).
    NotExecutable,
    /// Wants a dynamic loader (`PT_INTERP`).
    Interpreter,
    NoSegments,
    /// A segment's file bytes lie outside the image, or `filesz > memsz`.
    SegmentOutsideFile(u64),
    /// A segment is outside `[USER_TEXT_BASE, USER_SEGMENTS_END)` (e.g. a kernel address).
    SegmentOutsideUserSpace(u64),
    /// vaddr and file offset disagree modulo the page size.
    Misaligned(u64),
    /// Two segments share a page.
    Overlap(u64, u64),
    /// The entry point is not inside an executable segment.
    BadEntry(u64),
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ElfError::Malformed(why) => write!(f, "not a readable ELF image: {why}"),
            ElfError::NotX86_64 => write!(f, "not an x86-64 ELF64 image"),
            ElfError::NotExecutable => write!(f, "not a static executable (ET_EXEC)"),
            ElfError::Interpreter => write!(f, "needs a dynamic loader (PT_INTERP)"),
            ElfError::NoSegments => write!(f, "no loadable segments"),
            ElfError::SegmentOutsideFile(v) => write!(f, "segment at {v:#x} reaches past the end of the file"),
            ElfError::SegmentOutsideUserSpace(v) => {
                write!(f, "segment at {v:#x} outside user space ({USER_TEXT_BASE:#x}..{USER_SEGMENTS_END:#x})")
            }
            ElfError::Misaligned(v) => write!(f, "segment at {v:#x}: address and file offset differ modulo the page"),
            ElfError::Overlap(a, b) => write!(f, "segments at {a:#x} and {b:#x} overlap"),
            ElfError::BadEntry(e) => write!(f, "entry point {e:#x} is not in an executable segment"),
        }
    }
}

/// Check `image` and say what to map where.
pub fn plan(image: &[u8]) -> Result<Plan, ElfError> {
    let elf = ElfFile64::<Endianness>::parse(image).map_err(ElfError::Malformed)?;
    let endian = elf.endian();
    let header = elf.elf_header();
    if header.e_ident().class != ELFCLASS64 || header.e_machine(endian) != EM_X86_64 {
        return Err(ElfError::NotX86_64);
    }
    if header.e_type(endian) != ET_EXEC {
        return Err(ElfError::NotExecutable);
    }
    let mut segments: Vec<Segment> = Vec::new();
    for ph in elf.elf_program_headers() {
        match ph.p_type(endian) {
            PT_INTERP => return Err(ElfError::Interpreter),
            PT_LOAD => {}
            _ => continue,
        }
        let seg = Segment {
            vaddr: ph.p_vaddr(endian),
            memsz: ph.p_memsz(endian),
            file_offset: ph.p_offset(endian),
            file_size: ph.p_filesz(endian),
            writable: ph.p_flags(endian) & PF_W == PF_W,
            executable: ph.p_flags(endian) & PF_X == PF_X,
        };
        if seg.memsz == 0 {
            continue;
        }
        let file_end = seg.file_offset.checked_add(seg.file_size);
        if seg.file_size > seg.memsz || file_end.is_none_or(|end| end > image.len() as u64) {
            return Err(ElfError::SegmentOutsideFile(seg.vaddr));
        }
        let end = seg.vaddr.checked_add(seg.memsz);
        if seg.vaddr < USER_TEXT_BASE || end.is_none_or(|end| end > USER_SEGMENTS_END) {
            return Err(ElfError::SegmentOutsideUserSpace(seg.vaddr));
        }
        if seg.vaddr % PAGE_SIZE != seg.file_offset % PAGE_SIZE {
            return Err(ElfError::Misaligned(seg.vaddr));
        }
        if let Some(other) = segments.iter().find(|o| {
            let (a, b) = (o.pages(), seg.pages());
            a.0 < b.1 && b.0 < a.1
        }) {
            return Err(ElfError::Overlap(other.vaddr, seg.vaddr));
        }
        segments.push(seg);
    }
    if segments.is_empty() {
        return Err(ElfError::NoSegments);
    }
    let entry = header.e_entry(endian);
    if !segments.iter().any(|s| s.executable && (s.vaddr..s.vaddr + s.memsz).contains(&entry)) {
        return Err(ElfError::BadEntry(entry));
    }
    Ok(Plan { entry, segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 x86-64 ET_EXEC image with the given PT_LOAD
    /// segments `(vaddr, offset, filesz, memsz, flags)`, entry `entry`.
    fn image(entry: u64, segs: &[(u64, u64, u64, u64, u32)]) -> Vec<u8> {
        let phoff = 64u64;
        let mut v = vec![0u8; 0x3000];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = 2; // ELFCLASS64
        v[5] = 1; // little endian
        v[6] = 1; // EV_CURRENT
        v[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        v[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..32].copy_from_slice(&entry.to_le_bytes());
        v[32..40].copy_from_slice(&phoff.to_le_bytes());
        v[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        v[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        v[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        v[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        for (i, &(vaddr, off, filesz, memsz, flags)) in segs.iter().enumerate() {
            let p = phoff as usize + i * 56;
            v[p..p + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
            v[p + 4..p + 8].copy_from_slice(&flags.to_le_bytes());
            v[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            v[p + 16..p + 24].copy_from_slice(&vaddr.to_le_bytes());
            v[p + 24..p + 32].copy_from_slice(&vaddr.to_le_bytes());
            v[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            v[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
            v[p + 48..p + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        v
    }

    const RX: u32 = 5;
    const RW: u32 = 6;

    #[test]
    fn a_good_image_gives_its_segments_and_entry() {
        let img = image(0x40_0010, &[(0x40_0000, 0x1000, 0x100, 0x100, RX), (0x40_1000, 0x2000, 0x10, 0x2000, RW)]);
        let p = plan(&img).unwrap();
        assert_eq!(p.entry, 0x40_0010);
        assert_eq!(p.segments.len(), 2);
        assert!(p.segments[0].executable && !p.segments[0].writable);
        assert!(p.segments[1].writable && !p.segments[1].executable);
        assert_eq!(p.span(), (0x40_0000, 0x40_3000));
    }

    #[test]
    fn truncated_images_are_refused() {
        let img = image(0x40_0010, &[(0x40_0000, 0x1000, 0x100, 0x100, RX)]);
        assert!(matches!(plan(&img[..40]), Err(ElfError::Malformed(_))));
        // The segment's bytes lie past the end of a shortened file.
        assert_eq!(plan(&img[..0x1080]), Err(ElfError::SegmentOutsideFile(0x40_0000)));
        assert!(matches!(
            plan(b"not an elf at all, not even close to one........................"),
            Err(ElfError::Malformed(_))
        ));
    }

    #[test]
    fn kernel_addresses_and_the_stack_area_are_refused() {
        let img = image(0xffff_ffff_8000_0000, &[(0xffff_ffff_8000_0000, 0x1000, 0x10, 0x10, RX)]);
        assert_eq!(plan(&img), Err(ElfError::SegmentOutsideUserSpace(0xffff_ffff_8000_0000)));
        let img = image(0x1000, &[(0x1000, 0x1000, 0x10, 0x10, RX)]);
        assert_eq!(plan(&img), Err(ElfError::SegmentOutsideUserSpace(0x1000)));
        let img = image(USER_SEGMENTS_END, &[(USER_SEGMENTS_END - 0x1000, 0x1000, 0x10, 0x2000, RX)]);
        assert_eq!(plan(&img), Err(ElfError::SegmentOutsideUserSpace(USER_SEGMENTS_END - 0x1000)));
        // memsz wrapping around the address space.
        let img = image(0x40_0000, &[(0x40_0000, 0x1000, 0x10, u64::MAX - 0x100, RX)]);
        assert_eq!(plan(&img), Err(ElfError::SegmentOutsideUserSpace(0x40_0000)));
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let img = image(0x40_0000, &[(0x40_0000, 0x1000, 0x100, 0x1800, RX), (0x40_1000, 0x2000, 0x10, 0x10, RW)]);
        assert_eq!(plan(&img), Err(ElfError::Overlap(0x40_0000, 0x40_1000)));
    }

    #[test]
    fn entry_outside_text_filesz_over_memsz_and_misalignment_are_refused() {
        let img = image(0x40_1000, &[(0x40_0000, 0x1000, 0x100, 0x100, RX), (0x40_1000, 0x2000, 0x10, 0x10, RW)]);
        assert_eq!(plan(&img), Err(ElfError::BadEntry(0x40_1000)));
        let img = image(0x40_0000, &[(0x40_0000, 0x1000, 0x200, 0x100, RX)]);
        assert_eq!(plan(&img), Err(ElfError::SegmentOutsideFile(0x40_0000)));
        let img = image(0x40_0000, &[(0x40_0000, 0x1010, 0x100, 0x100, RX)]);
        assert_eq!(plan(&img), Err(ElfError::Misaligned(0x40_0000)));
    }

    #[test]
    fn a_pie_is_refused() {
        let mut img = image(0x40_0010, &[(0x40_0000, 0x1000, 0x100, 0x100, RX)]);
        img[16] = 3; // ET_DYN
        assert_eq!(plan(&img), Err(ElfError::NotExecutable));
    }
}
