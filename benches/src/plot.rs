//! `rm-plot`'s charts: a results file of `scripts/bench-compare` (JSON, see [`Results`]) to
//! SVG files: throughput and server CPU per request relative to ringmaster (one grouped
//! bar chart each, over all workloads) and a latency CDF per workload.
//!
//! plotters is built without `ttf`: the SVG names a generic font family and leaves the
//! glyphs to the viewer, so nothing needs a system font library. Text widths are then
//! only estimated, hence the generous margins below.

use std::collections::HashSet;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

/// The server every ratio is relative to; it always gets the first color.
pub const BASELINE: &str = "ringmaster";

/// A results file.
#[derive(Debug, Clone, Deserialize)]
pub struct Results {
    /// What was compared, e.g. "ringmaster vs peers".
    pub title: String,
    /// Where and when it ran (CPUs, kernel, date).
    #[serde(default)]
    pub machine: Option<String>,
    /// One entry per benchmark.
    pub workloads: Vec<Workload>,
}

/// One benchmark, run against every server.
#[derive(Debug, Clone, Deserialize)]
pub struct Workload {
    /// `[a-z0-9-]+`: names the latency chart's file.
    pub id: String,
    /// Human title (category label, latency chart title).
    pub title: String,
    /// What throughput counts, e.g. "req/s".
    pub unit: String,
    /// One entry per server.
    pub series: Vec<Series>,
}

/// One server's figures in one workload.
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    /// Server name; the same name has the same color in every chart.
    pub server: String,
    /// `unit`s per second; null when the run failed, and then the series is left out of
    /// every chart (its other figures mean nothing).
    pub throughput: Option<f64>,
    /// Server CPU microseconds per request; null when not measured.
    #[serde(default)]
    pub cpu_us: Option<f64>,
    /// `[percentile, µs]` pairs; missing, null or empty when not measured.
    #[serde(default)]
    pub latency_cdf_us: Option<Vec<[f64; 2]>>,
}

impl Series {
    /// The run completed (it has a throughput).
    fn ran(&self) -> bool {
        self.throughput.is_some()
    }

    fn cdf(&self) -> &[[f64; 2]] {
        self.latency_cdf_us.as_deref().unwrap_or(&[])
    }
}

/// What a bar chart compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `throughput` (higher is better).
    Throughput,
    /// `cpu_us`, server CPU per request (lower is better).
    Cpu,
}

impl Metric {
    fn of(self, s: &Series) -> Option<f64> {
        match self {
            Metric::Throughput => s.throughput,
            Metric::Cpu => s.cpu_us,
        }
    }
}

/// One bar: a server's figure and its ratio to ringmaster's in the same workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Server name.
    pub server: String,
    /// The figure itself (throughput in the workload's unit, or CPU µs per request).
    pub value: f64,
    /// `value` ÷ ringmaster's `value`.
    pub ratio: f64,
}

/// The bars of one workload, in the order of `series`: none when ringmaster has no
/// usable figure to divide by. Failed runs and missing figures are left out.
pub fn bars(w: &Workload, metric: Metric) -> Vec<Bar> {
    let base = w
        .series
        .iter()
        .find(|s| s.server == BASELINE && s.ran())
        .and_then(|s| metric.of(s))
        .filter(|&v| v > 0.0);
    let Some(base) = base else {
        return Vec::new();
    };
    w.series
        .iter()
        .filter(|s| s.ran())
        .filter_map(|s| {
            metric.of(s).map(|value| Bar {
                server: s.server.clone(),
                value,
                ratio: value / base,
            })
        })
        .collect()
}

/// Reads and checks a results file.
pub fn read_results(path: &Path) -> Result<Results, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let r: Results = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a results file: {e}", path.display()))?;
    check(&r).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(r)
}

/// Rejects what would make wrong file names or wrong charts.
fn check(r: &Results) -> Result<(), String> {
    if r.workloads.is_empty() {
        return Err("no workloads".into());
    }
    let mut ids = HashSet::new();
    for w in &r.workloads {
        let id_ok = !w.id.is_empty()
            && w.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!("workload id {:?} is not [a-z0-9-]+", w.id));
        }
        if !ids.insert(&w.id) {
            return Err(format!("workload id {:?} appears twice", w.id));
        }
        for s in &w.series {
            let negative = [s.throughput, s.cpu_us].iter().flatten().any(|&v| v < 0.0);
            let bad_cdf = s
                .cdf()
                .iter()
                .any(|&[p, us]| !(0.0..=100.0).contains(&p) || us < 0.0);
            if negative || bad_cdf {
                return Err(format!(
                    "{}/{}: negative or out-of-range figure",
                    w.id, s.server
                ));
            }
        }
    }
    Ok(())
}

/// Reads `input` and writes every chart into `out_dir` (created if missing), file names
/// starting with `prefix`; returns the files written.
pub fn plot_file(input: &Path, out_dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    write_charts(&read_results(input)?, out_dir, prefix)
}

/// Writes `{prefix}throughput.svg`, `{prefix}cpu.svg` and `{prefix}latency-{id}.svg` for
/// every workload with latency data into `out_dir`; returns the files written.
pub fn write_charts(r: &Results, out_dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, String> {
    check(r)?;
    fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let servers = palette_order(r);
    let mut written = Vec::new();
    let mut out = |name: String, draw: &dyn Fn(&Path) -> Drawn| {
        let path = out_dir.join(name);
        draw(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
        Ok::<_, String>(())
    };
    out(format!("{prefix}throughput.svg"), &|p| {
        bar_chart(r, Metric::Throughput, &servers, p)
    })?;
    out(format!("{prefix}cpu.svg"), &|p| {
        bar_chart(r, Metric::Cpu, &servers, p)
    })?;
    for w in &r.workloads {
        if w.series.iter().any(|s| s.ran() && !s.cdf().is_empty()) {
            out(format!("{prefix}latency-{}.svg", w.id), &|p| {
                latency_chart(r, w, &servers, p)
            })?;
        }
    }
    Ok(written)
}

/// Color order: ringmaster, then every other server in order of first appearance, so
/// that a server keeps its color across the charts of one file.
fn palette_order(r: &Results) -> Vec<String> {
    let mut order = vec![BASELINE.to_string()];
    for s in r.workloads.iter().flat_map(|w| &w.series) {
        if !order.contains(&s.server) {
            order.push(s.server.clone());
        }
    }
    order
}

/// Tableau 10: ten well-separated colors; the first (blue) is ringmaster's.
const COLORS: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0xed, 0xc9, 0x48),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xba, 0xb0, 0xac),
];

fn color(servers: &[String], name: &str) -> RGBColor {
    let i = servers.iter().position(|s| s == name).unwrap_or(0);
    COLORS[i % COLORS.len()]
}

/// The SVG backend writes `font-size` as plotters' size ÷ 1.24; this undoes that, so
/// `font(14.0)` is really 14 px in the file.
fn font(px: f64) -> TextStyle<'static> {
    ("sans-serif", px * 1.24).into_font().color(&BLACK)
}

/// Rough width of `text` in px at `px` size in a sans-serif font (no font metrics here).
fn text_width(text: &str, px: f64) -> i32 {
    (text.chars().count() as f64 * px * 0.58).ceil() as i32
}

/// `text`, cut and ended with "…" if it would be wider than `max_px`.
fn fit(text: &str, px: f64, max_px: i32) -> String {
    if text_width(text, px) <= max_px {
        return text.to_string();
    }
    let keep = (max_px / text_width("x", px)).max(2) as usize - 1;
    let cut: String = text.chars().take(keep).collect();
    format!("{}…", cut.trim_end())
}

const GREY: RGBColor = RGBColor(0x55, 0x55, 0x55);
const WIDTH: u32 = 900;
/// Height of the title, subtitle and legend above every chart.
const HEADER: u32 = 100;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// What drawing one chart file gives: plotters' errors (I/O, mostly) boxed.
type Drawn = Result<(), Box<dyn Error>>;

/// Title, subtitle and (for bar charts) a legend row of `legend` servers; returns the
/// area below.
fn header<'a>(
    root: &Area<'a>,
    r: &Results,
    title: &str,
    legend: &[&String],
    servers: &[String],
) -> Result<Area<'a>, Box<dyn Error>> {
    root.fill(&WHITE)?;
    root.draw_text(title, &font(20.0), (20, 12))?;
    let sub = match &r.machine {
        Some(m) => format!("{} · {m}", r.title),
        None => r.title.clone(),
    };
    root.draw_text(&sub, &font(14.0).color(&GREY), (20, 42))?;
    let mut x = 20;
    for name in legend {
        let c = color(servers, name);
        root.draw(&Rectangle::new([(x, 70), (x + 14, 84)], c.filled()))?;
        root.draw_text(name, &font(15.0), (x + 20, 69))?;
        x += 20 + text_width(name, 15.0) + 24;
    }
    Ok(root.split_vertically(HEADER).1)
}

/// `1234567.0` -> "1.23M", `153041.0` -> "153k", `5.7` -> "5.7".
fn short(v: f64) -> String {
    let (v, suffix) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let digits = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s}{suffix}")
}

/// The grouped horizontal bar chart of `metric` relative to ringmaster, one group per
/// workload, top to bottom in file order.
fn bar_chart(r: &Results, metric: Metric, servers: &[String], path: &Path) -> Drawn {
    // Bars in color order within a group, ringmaster first, whatever the file's order.
    let rank = |b: &Bar| servers.iter().position(|s| *s == b.server);
    let groups: Vec<Vec<Bar>> = r
        .workloads
        .iter()
        .map(|w| {
            let mut g = bars(w, metric);
            g.sort_by_key(rank);
            g
        })
        .collect();
    let n = groups.len();
    let per_group = groups.iter().map(Vec::len).max().unwrap_or(0);
    // 60 px a workload, more when many servers would make the bars thinner than the
    // 14 px labels beside them.
    let group_px = (20 * per_group as u32 + 20).max(60);
    let height = HEADER + n as u32 * group_px + 70;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();

    let (title, axis, value_label): (&str, &str, fn(&Workload, f64) -> String) = match metric {
        Metric::Throughput => (
            "Throughput relative to ringmaster (higher is better)",
            "throughput ÷ ringmaster's throughput",
            |w, v| format!("{} {}", short(v), w.unit),
        ),
        Metric::Cpu => (
            "Server CPU time per request relative to ringmaster (lower is better)",
            "CPU per request ÷ ringmaster's CPU per request",
            |_, v| format!("{v:.2} µs"),
        ),
    };
    let legend: Vec<&String> = servers
        .iter()
        .filter(|s| groups.iter().flatten().any(|b| &b.server == *s))
        .collect();
    let body = header(&root, r, title, &legend, servers)?;

    // Long workload titles are cut rather than let crowd out the bars.
    const MAX_LABEL_PX: i32 = 420;
    let cats: Vec<String> = r
        .workloads
        .iter()
        .map(|w| fit(&w.title, 14.0, MAX_LABEL_PX))
        .collect();
    let left = cats.iter().map(|c| text_width(c, 14.0)).max().unwrap_or(0) + 24;
    let labels: Vec<Vec<String>> = r
        .workloads
        .iter()
        .zip(&groups)
        .map(|(w, g)| {
            g.iter()
                .map(|b| format!("{:.2}× ({})", b.ratio, value_label(w, b.value)))
                .collect()
        })
        .collect();
    // Leave room right of the longest bar for its label.
    let plot_px = (WIDTH as i32 - left - 30) as f64;
    let label_px = labels
        .iter()
        .flatten()
        .map(|l| text_width(l, 14.0))
        .max()
        .unwrap_or(0);
    let max_ratio = groups.iter().flatten().map(|b| b.ratio).fold(1.0, f64::max);
    let x_max = max_ratio * plot_px / (plot_px - label_px as f64 - 12.0).max(plot_px * 0.4);

    // Workload i is the band [n-1-i, n-i) × BAND of the y axis, so the first is on top.
    // Integer units because plotters formats the labels of custom key points only on
    // integer axes.
    const BAND: i32 = 1000;
    let n_i = n as i32;
    let centers: Vec<i32> = (0..n_i).map(|i| i * BAND + BAND / 2).collect();
    let mut chart = ChartBuilder::on(&body)
        .margin_right(30)
        .margin_bottom(10)
        .set_label_area_size(LabelAreaPosition::Left, left)
        .set_label_area_size(LabelAreaPosition::Bottom, 60)
        .build_cartesian_2d(0.0..x_max, (0..n_i * BAND).with_key_points(centers))?;
    let cat_of = |y: &i32| cats[(n_i - 1 - (y / BAND).clamp(0, n_i - 1)) as usize].clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.1}×"))
        .y_label_formatter(&cat_of)
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .x_desc(axis)
        .light_line_style(WHITE)
        .draw()?;

    // Ringmaster's mark, for the eye to compare against (under the bars and labels).
    chart.draw_series(DashedLineSeries::new(
        [(1.0, 0), (1.0, n_i * BAND)],
        6,
        4,
        BLACK.mix(0.6).stroke_width(1),
    ))?;
    for (i, (g, ls)) in groups.iter().zip(&labels).enumerate() {
        let top = (n_i - i as i32) * BAND - BAND * 12 / 100;
        if g.is_empty() {
            let why = format!("no {BASELINE} figure to compare with");
            chart.draw_series(std::iter::once(
                EmptyElement::at((0.0, top - BAND * 38 / 100))
                    + Text::new(
                        why,
                        (8, 0),
                        font(14.0)
                            .color(&GREY)
                            .pos(Pos::new(HPos::Left, VPos::Center)),
                    ),
            ))?;
            continue;
        }
        let slot = BAND * 76 / 100 / g.len() as i32;
        for (j, (b, l)) in g.iter().zip(ls).enumerate() {
            let y1 = top - j as i32 * slot;
            let y0 = y1 - slot * 82 / 100;
            let c = color(servers, &b.server);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (b.ratio, y1)],
                c.filled(),
            )))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((b.ratio, (y0 + y1) / 2))
                    + Text::new(
                        l.clone(),
                        (6, 0),
                        font(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
                    ),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// The "nines" axis position of percentile `p`: 0 -> 0, 90 -> 1, 99 -> 2, ...; 100 (and
/// anything past 99.999) lands on the last tick, 5.
pub fn nines(p: f64) -> f64 {
    const LAST: f64 = 5.0;
    if p >= 100.0 {
        return LAST;
    }
    (-(1.0 - p / 100.0).log10()).clamp(0.0, LAST)
}

/// The values `m × 10^k` within `lo..=hi` for every `m` of `mantissas`: plotters' own
/// log axis labels only the powers of ten, which leaves a narrow range unlabeled.
fn log_ticks(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let decades = lo.log10().floor() as i32..=hi.log10().ceil() as i32;
    let all = decades.flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)));
    all.filter(|v| (lo..=hi).contains(v)).collect()
}

/// "250 µs", "1.5 ms", "2 s".
fn duration_label(us: f64) -> String {
    if us >= 1e6 {
        format!("{} s", short(us / 1e6))
    } else if us >= 1e3 {
        format!("{} ms", short(us / 1e3))
    } else {
        format!("{} µs", short(us))
    }
}

/// Latency (log scale) against percentile on a nines axis, one line per server.
fn latency_chart(r: &Results, w: &Workload, servers: &[String], path: &Path) -> Drawn {
    let root = SVGBackend::new(path, (WIDTH, 600)).into_drawing_area();
    let body = header(
        &root,
        r,
        &format!("{}: latency by percentile", w.title),
        &[],
        servers,
    )?;
    let lines: Vec<(&Series, Vec<(f64, f64)>)> = w
        .series
        .iter()
        .filter(|s| s.ran())
        .map(|s| {
            // A log axis has no place for 0 µs.
            let pts = s
                .cdf()
                .iter()
                .filter(|&&[_, us]| us > 0.0)
                .map(|&[p, us]| (nines(p), us));
            (s, pts.collect::<Vec<_>>())
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    let ys = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|&(_, y)| y));
    let (lo, hi) = ys.fold((f64::MAX, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lines.is_empty() {
        (1.0, 10.0)
    } else {
        (lo / 1.25, hi * 1.25)
    };

    const NINES: [&str; 6] = ["0", "90", "99", "99.9", "99.99", "99.999"];
    let mut chart = ChartBuilder::on(&body)
        .margin_right(30)
        .margin_bottom(10)
        .set_label_area_size(LabelAreaPosition::Left, 90)
        .set_label_area_size(LabelAreaPosition::Bottom, 60)
        .build_cartesian_2d(
            0.0..5.0,
            (lo..hi)
                .log_scale()
                .with_key_points(log_ticks(lo, hi, &[1.0, 2.0, 5.0]))
                .with_light_points(log_ticks(
                    lo,
                    hi,
                    &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
                )),
        )?;
    chart
        .configure_mesh()
        // 0..5 with at most 6 labels: plotters ticks every whole nine.
        .x_labels(6)
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            match NINES.get(i as usize) {
                Some(l) if (x - i).abs() < 1e-6 => l.to_string(),
                _ => String::new(),
            }
        })
        .y_label_formatter(&|y| duration_label(*y))
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .x_desc("percentile")
        .y_desc("latency")
        .draw()?;
    for (s, pts) in lines {
        let c = color(servers, &s.server);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(3))?
            .label(s.server.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(font(15.0))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "title": "ringmaster vs peers",
      "machine": "2 CPUs (test), kernel 6.18, 2026-11-23 18:00 UTC",
      "workloads": [
        {"id": "http-keepalive-256", "title": "HTTP /plaintext keep-alive, 256 connections",
         "unit": "req/s", "series": [
          {"server": "nginx", "throughput": 120000.0, "cpu_us": 7.1,
           "latency_cdf_us": [[0, 20.0], [50, 600.0], [99, 1500.0], [99.999, 2500.0], [100, 3000.0]]},
          {"server": "ringmaster", "throughput": 150000.0, "cpu_us": 5.0,
           "latency_cdf_us": [[0, 12.0], [50, 480.0], [99, 1200.0], [100, 2100.0]]},
          {"server": "crashy", "throughput": null, "cpu_us": null}
        ]},
        {"id": "tcp-echo-64", "title": "TCP echo, 64 B", "unit": "msg/s", "series": [
          {"server": "ringmaster", "throughput": 300000.0, "cpu_us": null},
          {"server": "tokio", "throughput": 330000.0, "cpu_us": 3.0, "latency_cdf_us": []}
        ]}
      ]
    }"#;

    fn sample() -> Results {
        let r: Results = serde_json::from_str(SAMPLE).unwrap();
        check(&r).unwrap();
        r
    }

    /// A fresh directory of its own for each test.
    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rm-plot-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn ratios_are_relative_to_ringmaster_and_skip_failed_runs() {
        let r = sample();
        let b = bars(&r.workloads[0], Metric::Throughput);
        let got: Vec<(&str, f64)> = b.iter().map(|b| (b.server.as_str(), b.ratio)).collect();
        assert_eq!(got, [("nginx", 0.8), ("ringmaster", 1.0)]);
        let c = bars(&r.workloads[0], Metric::Cpu);
        assert!((c[0].ratio - 1.42).abs() < 1e-12, "{c:?}");
        assert_eq!(c[0].value, 7.1);
        // No ringmaster CPU figure: nothing to compare with.
        assert!(bars(&r.workloads[1], Metric::Cpu).is_empty());
        assert_eq!(bars(&r.workloads[1], Metric::Throughput)[1].ratio, 1.1);
    }

    #[test]
    fn ringmaster_gets_the_first_color_whatever_the_order() {
        let order = palette_order(&sample());
        assert_eq!(order, ["ringmaster", "nginx", "crashy", "tokio"]);
        assert_eq!(color(&order, "ringmaster"), COLORS[0]);
    }

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(99.999) - 5.0).abs() < 1e-6);
        assert_eq!(nines(100.0), 5.0);
    }

    #[test]
    fn long_titles_are_cut() {
        assert_eq!(fit("short", 14.0, 380), "short");
        let long = "x".repeat(200);
        let cut = fit(&long, 14.0, 380);
        assert!(cut.ends_with('…') && text_width(&cut, 14.0) <= 380, "{cut}");
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(153_041.0), "153k");
        assert_eq!(short(1_234_567.0), "1.23M");
        assert_eq!(short(5.7), "5.7");
        assert_eq!(short(12.0), "12");
        assert_eq!(duration_label(2500.0), "2.5 ms");
        assert_eq!(
            log_ticks(300.0, 2600.0, &[1.0, 2.0, 5.0]),
            [500.0, 1000.0, 2000.0]
        );
    }

    #[test]
    fn writes_every_chart() {
        let dir = temp_dir("all");
        let files = write_charts(&sample(), &dir, "compare-").unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // tcp-echo-64 has no latency data: no chart for it.
        assert_eq!(
            names,
            [
                "compare-throughput.svg",
                "compare-cpu.svg",
                "compare-latency-http-keepalive-256.svg"
            ]
        );
        for f in &files {
            let svg = fs::read_to_string(f).unwrap();
            assert!(svg.contains("<svg"), "{}", f.display());
            assert!(svg.contains("ringmaster"), "{}", f.display());
            assert!(
                !svg.contains("crashy"),
                "a failed run is drawn in {}",
                f.display()
            );
        }
        let tp = fs::read_to_string(&files[0]).unwrap();
        assert!(tp.contains("0.80×") && tp.contains("1.10×"), "{tp}");
        assert!(tp.contains("HTTP /plaintext keep-alive, 256 connections"));
        let cpu = fs::read_to_string(&files[1]).unwrap();
        assert!(cpu.contains("1.42×") && cpu.contains("lower is better"));
        let lat = fs::read_to_string(&files[2]).unwrap();
        assert!(lat.contains("99.999") && lat.contains("nginx"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = temp_dir("bad");
        fs::create_dir_all(&dir).unwrap();
        let input = dir.join("r.json");
        assert!(plot_file(&input, &dir, "").unwrap_err().contains("r.json"));
        fs::write(&input, "{\"title\": 1}").unwrap();
        assert!(plot_file(&input, &dir, "").is_err());
        fs::write(&input, SAMPLE.replace("tcp-echo-64", "../x")).unwrap();
        assert!(plot_file(&input, &dir, "").unwrap_err().contains("../x"));
        // The output directory is a file.
        fs::write(&input, SAMPLE).unwrap();
        assert!(plot_file(&input, &input, "").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
