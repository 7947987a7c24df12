//! A picture of the stack tracer's records: for each kind of stack, its
//! size as a bar and the deepest recorded path as segments, one per frame
//! (read from a serial log holding `stack-trace` tables).

/// One `stack-trace` table: the kind, and (depth, size, location) rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub kind: String,
    pub rows: Vec<(u64, u64, String)>,
}

/// Every `stack-trace: KIND stack, recorded on CPU n` table in `log`.
pub fn parse_tables(log: &str) -> Vec<Table> {
    let lines: Vec<&str> = log.lines().collect();
    let mut tables = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix("stack-trace: ") else { continue };
        let Some((kind, _)) = rest.split_once(" stack, recorded on CPU ") else { continue };
        let rows = lines[i + 1..]
            .iter()
            .skip(2)
            .map_while(|r| {
                // A location may hold spaces (`<T as Trait>::f`): it is the
                // rest of the line after the two numbers.
                let (_, rest) = r.split_once(") ")?;
                let (depth, rest) = rest.trim_start().split_once(char::is_whitespace)?;
                let (size, location) = rest.trim_start().split_once(char::is_whitespace)?;
                Some((depth.parse().ok()?, size.parse().ok()?, location.trim().to_string()))
            })
            .collect();
        tables.push(Table { kind: kind.to_string(), rows });
    }
    tables
}

/// The function's short name: the last path segment, without `+off/len`.
fn short(location: &str) -> String {
    let name = location.split('+').next().unwrap_or(location);
    let name = name.rsplit("::").find(|s| !s.starts_with('{') && !s.starts_with('<')).unwrap_or(name);
    name.chars().filter(|c| !matches!(c, '<' | '>' | '&')).take(24).collect()
}

/// The SVG: one row per table, the bar `stack_size(kind)` bytes wide.
pub fn render(tables: &[Table], stack_size: impl Fn(&str) -> u64) -> String {
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 56.0;
    let scale = tables.iter().map(|t| stack_size(&t.kind)).max().unwrap_or(1) as f64 / WIDTH;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"monospace\" font-size=\"11\">\n",
        WIDTH + 160.0,
        ROW * tables.len() as f64 + 30.0
    );
    out += "<text x=\"4\" y=\"16\">deepest path recorded by the stack tracer, per kind of stack (top of stack at the left)</text>\n";
    for (i, t) in tables.iter().enumerate() {
        let y = 30.0 + ROW * i as f64;
        let size = stack_size(&t.kind);
        let depth = t.rows.first().map_or(0, |r| r.0);
        out += &format!(
            "<text x=\"4\" y=\"{}\">{} {depth} of {size}</text>\n",
            y + 14.0,
            t.kind.replace('&', "&amp;").replace('<', "&lt;")
        );
        out += &format!(
            "<rect x=\"150\" y=\"{y}\" width=\"{:.1}\" height=\"20\" fill=\"#eee\" stroke=\"#888\"/>\n",
            size as f64 / scale
        );
        // Frames from the top of the stack (the last row) down.
        for (j, (d, s, loc)) in t.rows.iter().rev().enumerate() {
            let x = 150.0 + (d - s) as f64 / scale;
            let w = (*s as f64 / scale).max(0.5);
            let fill = if j % 2 == 0 { "#4a90d9" } else { "#2f6db3" };
            out += &format!("<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"20\" fill=\"{fill}\"><title>{} ({s} bytes)</title></rect>\n",
                loc.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"));
            if w > 60.0 {
                out += &format!("<text x=\"{:.1}\" y=\"{}\" fill=\"white\">{}</text>\n", x + 3.0, y + 14.0, short(loc));
            }
        }
    }
    out += "</svg>\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "tristack> stack-trace NMI
stack-trace: NMI stack, recorded on CPU 0
        Depth    Size   Location    (3 entries)
        -----    ----   --------
  0)      368      40   core::sync::atomic::atomic_load::<u8, false>+0x17/0x89
  1)      328     144   tristack::arch::x86_64::entry::nmi::handle+0xa4/0x19d
  2)      184     184   tristack_paranoid_common+0x53/0x9b
tristack> poweroff
";

    #[test]
    fn tables_are_read_back_from_a_serial_log() {
        let t = parse_tables(LOG);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].kind, "NMI");
        assert_eq!(t[0].rows[1], (328, 144, "tristack::arch::x86_64::entry::nmi::handle+0xa4/0x19d".to_string()));
        assert_eq!(t[0].rows.len(), 3);
        // A location with spaces in it is read whole.
        assert_eq!(t[0].rows[0].2, "core::sync::atomic::atomic_load::<u8, false>+0x17/0x89");
    }

    #[test]
    fn every_frame_is_a_segment_inside_its_stack_bar() {
        let svg = render(&parse_tables(LOG), |_| 8192);
        assert_eq!(svg.matches("<rect").count(), 1 + 3);
        assert!(svg.contains("NMI 368 of 8192"));
        assert!(svg.contains("<title>tristack::arch::x86_64::entry::nmi::handle+0xa4/0x19d (144 bytes)</title>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
