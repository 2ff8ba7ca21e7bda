//! The report's charts: inline SVG drawn with plotters (its SVG backend and
//! its built-in text metrics, so no system font is read and the output is the
//! same on every machine). Every time chart shares one x axis, the run's
//! clock in seconds, so fault windows (shaded bands) and markers (scale-outs,
//! a stop condition firing) line up across all of them.
//!
//! plotters was chosen over hand-written SVG (axes, ticks and legends are a
//! lot of fiddly code) and over charming/ECharts (needs a script at view
//! time, and the report must open offline with no script at all).

use std::ops::Range;

use plotters::{coord::ranged1d::SegmentValue, prelude::*};

/// A fault window to shade on every time chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub from_s: f64,
    pub to_s: f64,
    pub label: String,
}

/// A moment to mark with a dashed vertical line.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at_s: f64,
    pub label: String,
}

/// What every time chart draws behind its lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Marks {
    pub bands: Vec<Band>,
    pub markers: Vec<Marker>,
}

pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub dashed: bool,
    /// Filled down to zero (a stacked area: give the series top-down).
    pub area: bool,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            color,
            dashed: false,
            area: false,
            points,
        }
    }

    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    pub fn area(mut self) -> Self {
        self.area = true;
        self
    }
}

/// Room on the right of every time chart for its legend, so the legend
/// never hides data.
const LEGEND_PX: u32 = 120;

/// The Okabe-Ito palette: told apart by readers with any common colour
/// vision deficiency. Each series keeps its colour on every chart.
pub mod palette {
    use plotters::style::RGBColor;

    pub const BLACK: RGBColor = RGBColor(0, 0, 0);
    pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
    pub const SKY_BLUE: RGBColor = RGBColor(86, 180, 233);
    pub const BLUISH_GREEN: RGBColor = RGBColor(0, 158, 115);
    pub const YELLOW: RGBColor = RGBColor(240, 228, 66);
    pub const BLUE: RGBColor = RGBColor(0, 114, 178);
    pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
    pub const REDDISH_PURPLE: RGBColor = RGBColor(204, 121, 167);
    pub const GREY: RGBColor = RGBColor(120, 120, 120);

    pub const SHOPPERS: RGBColor = SKY_BLUE;
    pub const SUCCEEDED: RGBColor = BLUISH_GREEN;
    pub const FAILED: RGBColor = VERMILLION;
    pub const P50: RGBColor = BLUE;
    pub const P95: RGBColor = ORANGE;
    pub const P99: RGBColor = REDDISH_PURPLE;
    pub const AVAILABILITY: RGBColor = BLACK;
    pub const TARGET: RGBColor = GREY;
    pub const RUNNING: RGBColor = BLACK;
    pub const SERVING: RGBColor = BLUISH_GREEN;

    /// Each of the shop's services in its own colour, the same on every chart.
    pub fn service(name: &str) -> RGBColor {
        match name {
            "web" => BLUE,
            "user" => ORANGE,
            "catalogue" => BLUISH_GREEN,
            "cart" => VERMILLION,
            "orders" => REDDISH_PURPLE,
            "shipping" => SKY_BLUE,
            _ => GREY,
        }
    }
}

const BAND: RGBAColor = RGBAColor(0, 0, 0, 0.07);
const BAND_LINE: RGBColor = RGBColor(90, 90, 90);
const BAND_TEXT: RGBColor = RGBColor(60, 60, 60);
const MARKER: RGBColor = RGBColor(68, 68, 68);
/// Roughly how wide a character of an 11 px label is.
const CHAR_PX: i32 = 6;

pub struct TimeChart<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    /// The shared time axis, in seconds of the run's clock.
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub size: (u32, u32),
    /// The y axis counts things: only whole numbers are labelled.
    pub counts: bool,
}

/// Greedy label placement in rows: a label goes in the first row where it
/// does not overlap the last label there, or nowhere.
struct Lanes {
    ends: Vec<i32>,
}

impl Lanes {
    fn new(rows: usize) -> Self {
        Self {
            ends: vec![i32::MIN; rows],
        }
    }

    /// The row for a label spanning `from..to` pixels, if one has room.
    fn place(&mut self, from: i32, to: i32) -> Option<usize> {
        let row = self.ends.iter().position(|end| from > *end + 4)?;
        self.ends[row] = to;
        Some(row)
    }
}

/// An SVG document; a chart that cannot be drawn says why instead.
pub fn time_chart(spec: &TimeChart<'_>, series: &[Series], marks: &Marks) -> String {
    let mut svg = String::new();
    let drawn = draw_time_chart(&mut svg, spec, series, marks);
    match drawn {
        Ok(()) => svg,
        Err(e) => format!(
            "<p class=\"na\">chart \"{}\" could not be drawn: {e}</p>",
            spec.title
        ),
    }
}

fn style(s: &Series) -> ShapeStyle {
    s.color.stroke_width(if s.dashed { 1 } else { 2 })
}

type Root<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Plot<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

fn draw_time_chart(
    out: &mut String,
    spec: &TimeChart<'_>,
    series: &[Series],
    marks: &Marks,
) -> Drawn {
    let root = SVGBackend::with_string(out, spec.size).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 16))
        .margin(10)
        .margin_right(LEGEND_PX)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(spec.x.clone(), spec.y.clone())?;
    draw_mesh(&mut chart, spec)?;
    draw_bands(&mut chart, spec, marks)?;
    draw_markers(&root, &chart, spec, marks)?;
    draw_lines(&mut chart, series)?;
    draw_legend(&root, &chart, spec, series)?;
    root.present()?;
    Ok(())
}

/// The axes and grid; a count axis reads whole numbers only.
fn draw_mesh(chart: &mut Plot<'_, '_>, spec: &TimeChart<'_>) -> Drawn {
    let y_span = spec.y.end - spec.y.start;
    let counts = spec.counts;
    let y_fmt = move |v: &f64| {
        if counts {
            // Whole numbers only: a count axis never reads "6.0" or "2.5".
            if (v - v.round()).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        } else if y_span >= 20.0 {
            format!("{v:.0}")
        } else if y_span >= 2.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    chart
        .configure_mesh()
        .x_desc("seconds since the run started")
        .y_desc(spec.y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(238, 240, 245))
        .bold_line_style(RGBColor(222, 226, 234))
        .x_labels(12)
        .y_labels(if counts {
            (y_span.round() as usize + 1).clamp(2, 8)
        } else {
            6
        })
        .draw()?;
    Ok(())
}

/// A fault that shoppers barely felt still shows: a band at least 1% of
/// the axis wide, and a solid line where it was injected. Labels go in up
/// to three rows at the top, only where there is room.
fn draw_bands(chart: &mut Plot<'_, '_>, spec: &TimeChart<'_>, marks: &Marks) -> Drawn {
    let (y0, y1) = (spec.y.start, spec.y.end);
    let min_width = (spec.x.end - spec.x.start) * 0.01;
    let mut band_lanes = Lanes::new(3);
    for band in &marks.bands {
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (band.from_s, y0),
                (band.to_s.max(band.from_s + min_width), y1),
            ],
            BAND.filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            [(band.from_s, y0), (band.from_s, y1)],
            BAND_LINE.stroke_width(1),
        ))?;
        let px = chart.backend_coord(&(band.from_s, y1)).0;
        let width = CHAR_PX * band.label.chars().count() as i32;
        if let Some(row) = band_lanes.place(px, px + width + 3) {
            chart.draw_series(std::iter::once(
                EmptyElement::at((band.from_s, y1))
                    + Text::new(
                        band.label.clone(),
                        (3, 3 + 13 * row as i32),
                        ("sans-serif", 11).into_font().color(&BAND_TEXT),
                    ),
            ))?;
        }
    }
    Ok(())
}

/// Markers (scale-outs, a stop rule) are small ticks on the x axis, with a
/// label in the lane above the axis only where there is room; the tables
/// list every one.
fn draw_markers(
    root: &Root<'_>,
    chart: &Plot<'_, '_>,
    spec: &TimeChart<'_>,
    marks: &Marks,
) -> Drawn {
    let mut marker_lanes = Lanes::new(2);
    for m in &marks.markers {
        let (px, py) = chart.backend_coord(&(m.at_s, spec.y.start));
        root.draw(&PathElement::new(
            vec![(px, py), (px, py - 8)],
            MARKER.stroke_width(2),
        ))?;
        let width = CHAR_PX * m.label.chars().count() as i32;
        if let Some(row) = marker_lanes.place(px, px + width + 3) {
            root.draw(&Text::new(
                m.label.clone(),
                (px + 2, py - 20 - 12 * row as i32),
                ("sans-serif", 11).into_font().color(&MARKER),
            ))?;
        }
    }
    Ok(())
}

fn draw_lines(chart: &mut Plot<'_, '_>, series: &[Series]) -> Drawn {
    for s in series {
        let line = style(s);
        if s.area {
            chart.draw_series(AreaSeries::new(
                s.points.iter().copied(),
                0.0,
                s.color.mix(0.55).filled(),
            ))?;
        }
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, line))?;
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), line))?;
        }
    }
    Ok(())
}

/// The legend, in its own column right of the plot.
fn draw_legend(
    root: &Root<'_>,
    chart: &Plot<'_, '_>,
    spec: &TimeChart<'_>,
    series: &[Series],
) -> Drawn {
    let (right, top) = chart.backend_coord(&(spec.x.end, spec.y.end));
    for (i, s) in series.iter().enumerate() {
        let y = top + 6 + 16 * i as i32;
        let x = right + 12;
        if s.dashed {
            for k in 0..3 {
                root.draw(&PathElement::new(
                    vec![(x + 7 * k, y), (x + 7 * k + 4, y)],
                    style(s),
                ))?;
            }
        } else {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 18, y)],
                style(s).stroke_width(3),
            ))?;
        }
        root.draw(&Text::new(
            s.name.clone(),
            (x + 24, y - 6),
            ("sans-serif", 12).into_font(),
        ))?;
    }
    Ok(())
}

/// A bar chart over named categories (the latency distribution).
pub fn bar_chart(title: &str, y_desc: &str, bars: &[(String, f64)], size: (u32, u32)) -> String {
    let mut svg = String::new();
    match draw_bar_chart(&mut svg, title, y_desc, bars, size) {
        Ok(()) => svg,
        Err(e) => format!("<p class=\"na\">chart \"{title}\" could not be drawn: {e}</p>"),
    }
}

fn draw_bar_chart(
    out: &mut String,
    title: &str,
    y_desc: &str,
    bars: &[(String, f64)],
    size: (u32, u32),
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, size).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0) * 1.1;
    let n = bars.len() as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(RGBColor(238, 240, 245))
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_labels(bars.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => bars
                .get(*i as usize)
                .map(|b| b.0.clone())
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let i = i as u32;
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            palette::BLUE.filled(),
        );
        bar.set_margin(0, 0, 6, 6);
        bar
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TimeChart<'static> {
        TimeChart {
            title: "Requests per second",
            y_desc: "req/s",
            x: 0.0..60.0,
            y: 0.0..100.0,
            size: (600, 240),
            counts: false,
        }
    }

    #[test]
    fn a_time_chart_is_svg_with_its_title_lines_and_fault_band() {
        let marks = Marks {
            bands: vec![Band {
                from_s: 20.0,
                to_s: 30.0,
                label: "kill-pod cart".into(),
            }],
            markers: vec![Marker {
                at_s: 40.0,
                label: "catalogue 2→3".into(),
            }],
        };
        let flat = || {
            [Series::new(
                "ok",
                palette::SUCCEEDED,
                (0..60).map(|t| (t as f64, 50.0)).collect(),
            )]
        };
        let svg = time_chart(&spec(), &flat(), &marks);
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("Requests per second"));
        assert!(svg.contains("kill-pod cart"));
        assert!(svg.contains("catalogue 2→3"));
        assert!(svg.contains("<polyline"), "the line is drawn");
        assert!(svg.contains("\nok\n"), "the legend names the series");
        // Same input, same bytes: reports re-render identically.
        assert_eq!(svg, time_chart(&spec(), &flat(), &marks));
    }

    #[test]
    fn markers_too_close_to_label_keep_their_ticks_but_not_overlapping_labels() {
        // Fifteen scale-outs within 30 s of a 600 s axis: each gets a tick,
        // only those with room get a label.
        let markers: Vec<Marker> = (0..15)
            .map(|i| Marker {
                at_s: 100.0 + 2.0 * i as f64,
                label: format!("catalogue {}→{}", i + 2, i + 3),
            })
            .collect();
        let marks = Marks {
            bands: Vec::new(),
            markers,
        };
        let spec = TimeChart {
            x: 0.0..600.0,
            ..spec()
        };
        let svg = time_chart(&spec, &[], &marks);
        let labels = svg.matches("catalogue ").count();
        assert!((1..=4).contains(&labels), "{labels} labels drawn");
        assert_eq!(
            svg.matches("stroke-width=\"2\"").count(),
            15,
            "one tick each"
        );
    }

    #[test]
    fn a_count_axis_labels_whole_numbers_only() {
        let spec = TimeChart {
            y: 0.0..7.0,
            counts: true,
            ..spec()
        };
        let svg = time_chart(
            &spec,
            &[Series::new(
                "cart",
                palette::service("cart"),
                vec![(0.0, 2.0), (60.0, 6.0)],
            )],
            &Marks::default(),
        );
        // plotters writes each label on a line of its own.
        assert!(
            !svg.contains("\n6.0\n") && !svg.contains("\n2.5\n"),
            "{svg}"
        );
        assert!(svg.contains("\n6\n") && svg.contains("\n7\n"), "{svg}");
    }

    #[test]
    fn a_bar_chart_labels_every_bar() {
        let bars = vec![("<1 ms".to_string(), 10.0), ("1-2 ms".to_string(), 90.0)];
        let svg = bar_chart("Latency", "% of requests", &bars, (600, 240));
        assert!(svg.contains("&lt;1 ms"), "labels are escaped");
        assert!(svg.contains("1-2 ms"));
        // The background and one rectangle per bar.
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
    }
}
