//! Charts drawn on the server as SVG elements (no script, no external crate): stacked bars
//! over days and horizontal bars by label. Each chart is an image with a title and a label
//! (`role="img"`, `aria-labelledby`); the page follows it with its data table, the text
//! alternative. Every bar carries its value in `data-value`; labels are escaped by maud.

use maud::{html, Markup};

/// Colours of the series (contrast of at least 3:1 against white, distinct in grey).
pub const PALETTE: [&str; 8] = [
    "#0b4f8a", "#b35900", "#1e6b34", "#8a1c7c", "#4d4d4d", "#a4161a", "#00727a", "#5c3d99",
];

/// A stacked bar: its label (under it) and a value per series (`None`-like zeros allowed).
pub struct Stack {
    /// Under the bar.
    pub label: String,
    /// One value per series, in the series' order.
    pub values: Vec<u64>,
}

const W: u32 = 720;
const PLOT_H: u32 = 220;
const TOP: u32 = 10;
const LEFT: u32 = 48;

fn scale(max: u64, h: u32) -> impl Fn(u64) -> u32 {
    move |v| {
        if max == 0 {
            0
        } else {
            u32::try_from(u128::from(v) * u128::from(h) / u128::from(max)).unwrap_or(h)
        }
    }
}

/// The non-zero values of a stack: `(series, value, sum of the values below it)`.
fn segments(values: &[u64]) -> Vec<(usize, u64, u64)> {
    let mut below = 0;
    let mut out = Vec::new();
    for (k, v) in values.iter().enumerate() {
        if *v > 0 {
            out.push((k, *v, below));
            below += v;
        }
    }
    out
}

/// Stacked vertical bars (`stacks`, one per day), one colour per series (`series` names
/// them in the legend); `id` makes the title's and description's ids; `fmt` writes a
/// number for people.
pub fn stacked(
    id: &str,
    title: &str,
    desc: &str,
    series: &[String],
    stacks: &[Stack],
    fmt: &dyn Fn(u64) -> String,
) -> Markup {
    let max = stacks
        .iter()
        .map(|s| s.values.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let y = scale(max, PLOT_H);
    let n = u32::try_from(stacks.len().max(1)).unwrap_or(1);
    let slot = (W - LEFT - 10) / n;
    let bar_w = (slot * 2 / 3).clamp(4, 60);
    let legend_rows = u32::try_from(series.len()).unwrap_or(0);
    let h = TOP + PLOT_H + 40 + legend_rows * 20 + 10;
    let base = TOP + PLOT_H;
    html! {
        svg.chart id=(id) role="img" viewBox=(format!("0 0 {W} {h}")) width="100%"
            aria-labelledby=(format!("{id}-title {id}-desc")) xmlns="http://www.w3.org/2000/svg" {
            title id=(format!("{id}-title")) { (title) }
            desc id=(format!("{id}-desc")) { (desc) }
            line x1=(LEFT) y1=(base) x2=(W - 5) y2=(base) stroke="#1a1a1a" {}
            line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(base) stroke="#1a1a1a" {}
            text x=(LEFT - 6) y=(TOP + 10) text-anchor="end" font-size="12" { (fmt(max)) }
            text x=(LEFT - 6) y=(base) text-anchor="end" font-size="12" { "0" }
            @for (i, s) in stacks.iter().enumerate() {
                @let x = LEFT + 5 + u32::try_from(i).unwrap_or(0) * slot + (slot - bar_w) / 2;
                @let total: u64 = s.values.iter().sum();
                g.bar data-label=(s.label) data-total=(total) {
                    @for (k, v, below) in segments(&s.values) {
                        @let y0 = base - y(below);
                        @let y1 = base - y(below + v);
                        rect x=(x) y=(y1) width=(bar_w) height=(y0 - y1)
                            fill=(PALETTE[k % PALETTE.len()]) data-value=(v) data-series=(k) {
                            title { (series.get(k).map(String::as_str).unwrap_or("")) " — " (fmt(v)) }
                        }
                    }
                    text x=(x + bar_w / 2) y=(base - y(total) - 3) text-anchor="middle" font-size="12" { (fmt(total)) }
                    text x=(x + bar_w / 2) y=(base + 16) text-anchor="middle" font-size="12" { (s.label) }
                }
            }
            @for (k, name) in series.iter().enumerate() {
                @let ly = base + 36 + u32::try_from(k).unwrap_or(0) * 20;
                rect x=(LEFT) y=(ly - 11) width="14" height="14" fill=(PALETTE[k % PALETTE.len()]) {}
                text x=(LEFT + 20) y=(ly) font-size="13" { (name) }
            }
        }
    }
}

/// Horizontal bars, one per `(label, value)`.
pub fn bars(
    id: &str,
    title: &str,
    desc: &str,
    rows: &[(String, u64)],
    fmt: &dyn Fn(u64) -> String,
) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    let label_w = 260;
    let x = scale(max, W - label_w - 70);
    let h = u32::try_from(rows.len().max(1)).unwrap_or(1) * 28 + 10;
    html! {
        svg.chart id=(id) role="img" viewBox=(format!("0 0 {W} {h}")) width="100%"
            aria-labelledby=(format!("{id}-title {id}-desc")) xmlns="http://www.w3.org/2000/svg" {
            title id=(format!("{id}-title")) { (title) }
            desc id=(format!("{id}-desc")) { (desc) }
            @for (i, (label, v)) in rows.iter().enumerate() {
                @let y = 5 + u32::try_from(i).unwrap_or(0) * 28;
                g.bar data-label=(label) data-total=(v) {
                    text x=(label_w - 8) y=(y + 16) text-anchor="end" font-size="13" { (label) }
                    rect x=(label_w) y=(y) width=(x(*v).max(1)) height="20" fill=(PALETTE[0]) data-value=(v) {}
                    text x=(label_w + x(*v).max(1) + 6) y=(y + 16) font-size="13" { (fmt(*v)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
        svg.split(&format!(" {name}=\""))
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect()
    }

    fn n(v: u64) -> String {
        v.to_string()
    }

    #[test]
    fn stacked_bars_sum_to_the_data_and_their_heights_are_proportional() {
        let series = vec![
            "DPJ · police-vers-protection".to_owned(),
            "CJQ · r".to_owned(),
        ];
        let stacks = vec![
            Stack {
                label: "2 déc.".into(),
                values: vec![3, 1],
            },
            Stack {
                label: "3 déc.".into(),
                values: vec![0, 2],
            },
        ];
        let svg = stacked("c", "Divulgations", "par jour", &series, &stacks, &n).into_string();
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title id=\"c-title\">Divulgations</title>"));
        let values: Vec<u64> = attrs(&svg, "data-value")
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values, [3, 1, 2], "one rect per non-zero value, in order");
        assert_eq!(values.iter().sum::<u64>(), 6, "the bars sum to the data");
        let totals: Vec<&str> = attrs(&svg, "data-total");
        assert_eq!(totals, ["4", "2"]);
        let heights: Vec<u32> = attrs(&svg, "height")
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        // The tallest bar (4) fills the plot: 3 -> 165, 1 -> 55, 2 -> 110; then the legend's
        // swatches (14).
        assert_eq!(heights, [165, 55, 110, 14, 14]);
    }

    #[test]
    fn labels_are_escaped() {
        let rows = vec![("<script>alert(1)</script> & \"x\"".to_owned(), 2)];
        let svg = bars("r", "Refus <b>", "d", &rows, &n).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(
            svg.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"),
            "{svg}"
        );
        assert!(svg.contains("Refus &lt;b&gt;"));
        assert_eq!(attrs(&svg, "data-value"), ["2"]);
    }

    #[test]
    fn an_empty_chart_draws_no_bar() {
        let svg = stacked("e", "t", "d", &[], &[], &n).into_string();
        assert!(!svg.contains("data-value"));
        let svg = bars("e", "t", "d", &[("a".into(), 0)], &n).into_string();
        assert_eq!(attrs(&svg, "data-value"), ["0"]);
    }
}
