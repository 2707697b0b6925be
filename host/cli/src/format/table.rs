//! A port of the parts of Go's `text/tabwriter` that docker uses for its
//! tables (`minwidth`, `padding`, space padding, column blocks), so our
//! columns line up exactly like docker's.

/// Aligns tab-separated cells of `text` like
/// `tabwriter.NewWriter(w, minwidth, 1, padding, ' ', 0)` does.
/// A cell is text ended by a tab; the last cell of a line is not aligned.
pub fn tabwriter(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn cell_width(cell: &str) -> usize {
    cell.chars().count()
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(cell_width(lines[this][column]) + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                if let Some(w) = widths.get(j) {
                    let pad = w.saturating_sub(cell_width(cell));
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go_tabwriter() {
        let text = "CONTAINER ID\tIMAGE\tNAMES\nabc\tbusybox:latest\tx\n";
        assert_eq!(
            tabwriter(text, 10, 3),
            "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   x\n"
        );
    }

    #[test]
    fn min_width_and_empty_cells() {
        let text = "A\tB\tC\n\t\tz\n";
        assert_eq!(
            tabwriter(text, 10, 3),
            "A         B         C\n                    z\n"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "\"sleep 1000000000…\"\tx\nab\ty\n";
        assert_eq!(
            tabwriter(text, 10, 3),
            "\"sleep 1000000000…\"   x\nab                    y\n"
        );
    }

    #[test]
    fn column_blocks_break_on_shorter_lines() {
        let text = "a\tb\nsingle line\nlonger-cell\tc\n";
        assert_eq!(tabwriter(text, 1, 1), "a b\nsingle line\nlonger-cell c\n");
    }
}
