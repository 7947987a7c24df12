//! The compiler's own figures: rustc `-Z emit-stack-sizes` makes LLVM write
//! a `.stack_sizes` section, one entry per function: its address (8 bytes,
//! little endian) and its stack size (ULEB128).

/// (function address, stack size) pairs; Err for a truncated section.
pub fn parse(mut data: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some((addr, rest)) = data.split_first_chunk::<8>() else {
            return Err(format!("truncated address after {} entries", out.len()));
        };
        let (size, rest) = uleb128(rest).ok_or_else(|| format!("truncated size after {} entries", out.len()))?;
        out.push((u64::from_le_bytes(*addr), size));
        data = rest;
    }
    Ok(out)
}

fn uleb128(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_one_and_two_byte_sizes() {
        let mut data = 0xffff_ffff_8000_1000u64.to_le_bytes().to_vec();
        data.push(0x18);
        data.extend(0xffff_ffff_8000_2000u64.to_le_bytes());
        data.extend([0x88, 0x20]); // 0x1008
        assert_eq!(parse(&data).unwrap(), vec![(0xffff_ffff_8000_1000, 0x18), (0xffff_ffff_8000_2000, 0x1008)]);
    }

    #[test]
    fn truncated_sections_are_errors() {
        assert!(parse(&[1, 2, 3]).is_err());
        let mut data = 0x1000u64.to_le_bytes().to_vec();
        data.push(0x80);
        assert!(parse(&data).is_err());
        assert_eq!(parse(&[]).unwrap(), vec![]);
    }
}
