//! A squarified treemap layout (Bruls, Huizing and van Wijk): areas proportional to sizes,
//! rectangles kept close to square so that small packages stay legible. Pure geometry.

/// A placed rectangle: the index of the item it stands for, and where it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub item: usize,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// Lays out `sizes` (any order; zero sizes get no cell) in the rectangle `(x, y, w, h)`.
pub fn layout(sizes: &[u64], x: f64, y: f64, w: f64, h: f64) -> Vec<Cell> {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    let mut items: Vec<(usize, f64)> = sizes
        .iter()
        .enumerate()
        .filter(|(_, &s)| s > 0)
        .map(|(i, &s)| (i, s as f64))
        .collect();
    if items.is_empty() || total <= 0.0 || w <= 0.0 || h <= 0.0 {
        return Vec::new();
    }
    // Largest first, as the algorithm expects; scaled so that areas add up to the rectangle.
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let scale = w * h / total;
    let items: Vec<(usize, f64)> = items.into_iter().map(|(i, s)| (i, s * scale)).collect();
    let mut cells = Vec::with_capacity(items.len());
    let (mut x, mut y, mut w, mut h) = (x, y, w, h);
    let mut rest = &items[..];
    while !rest.is_empty() {
        let side = w.min(h);
        // Grow the row while that makes its worst aspect ratio no worse.
        let mut n = 1;
        while n < rest.len() && worst(&rest[..n + 1], side) <= worst(&rest[..n], side) {
            n += 1;
        }
        let row = &rest[..n];
        let area: f64 = row.iter().map(|r| r.1).sum();
        let thickness = area / side;
        let mut offset = 0.0;
        for &(item, a) in row {
            let length = a / thickness;
            let cell = if w >= h {
                // Row along the left edge, stacked top to bottom.
                Cell {
                    item,
                    x,
                    y: y + offset,
                    w: thickness,
                    h: length,
                }
            } else {
                Cell {
                    item,
                    x: x + offset,
                    y,
                    w: length,
                    h: thickness,
                }
            };
            cells.push(cell);
            offset += length;
        }
        if w >= h {
            x += thickness;
            w -= thickness;
        } else {
            y += thickness;
            h -= thickness;
        }
        rest = &rest[n..];
    }
    cells
}

/// The worst aspect ratio of `row` laid along a side of length `side`.
fn worst(row: &[(usize, f64)], side: f64) -> f64 {
    let sum: f64 = row.iter().map(|r| r.1).sum();
    let max = row.iter().map(|r| r.1).fold(f64::MIN, f64::max);
    let min = row.iter().map(|r| r.1).fold(f64::MAX, f64::min);
    let s2 = side * side;
    f64::max(s2 * max / (sum * sum), (sum * sum) / (s2 * min))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_are_proportional_and_cells_stay_inside() {
        let sizes = [600, 0, 300, 50, 50];
        let cells = layout(&sizes, 10.0, 20.0, 400.0, 300.0);
        assert_eq!(cells.len(), 4, "the empty item gets no cell");
        let total_area = 400.0 * 300.0;
        for c in &cells {
            let expected = sizes[c.item] as f64 / 1000.0 * total_area;
            assert!((c.w * c.h - expected).abs() < 1e-6, "{c:?}");
            assert!(c.x >= 10.0 - 1e-9 && c.x + c.w <= 410.0 + 1e-9, "{c:?}");
            assert!(c.y >= 20.0 - 1e-9 && c.y + c.h <= 320.0 + 1e-9, "{c:?}");
        }
        // The biggest item comes first and is not a sliver.
        assert_eq!(cells[0].item, 0);
        assert!(cells[0].w / cells[0].h < 3.0 && cells[0].h / cells[0].w < 3.0);
        assert!(layout(&[0, 0], 0.0, 0.0, 10.0, 10.0).is_empty());
    }
}
