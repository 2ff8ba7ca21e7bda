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
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            color,
            dashed: false,
            points,
        }
    }
}

pub const BLUE_: RGBColor = RGBColor(31, 119, 180);
pub const GREEN_: RGBColor = RGBColor(43, 138, 62);
pub const RED_: RGBColor = RGBColor(201, 42, 42);
pub const ORANGE_: RGBColor = RGBColor(230, 119, 0);
pub const PURPLE_: RGBColor = RGBColor(112, 72, 232);
pub const GREY_: RGBColor = RGBColor(120, 120, 120);
const BAND: RGBAColor = RGBAColor(230, 119, 0, 0.16);
const BAND_TEXT: RGBColor = RGBColor(150, 70, 0);
const MARKER: RGBColor = RGBColor(25, 113, 194);

pub struct TimeChart<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    /// The shared time axis, in seconds of the run's clock.
    pub x: Range<f64>,
    pub y: Range<f64>,
    pub size: (u32, u32),
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

fn draw_time_chart(
    out: &mut String,
    spec: &TimeChart<'_>,
    series: &[Series],
    marks: &Marks,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(out, spec.size).into_drawing_area();
    root.fill(&WHITE)?;
    let (y0, y1) = (spec.y.start, spec.y.end);
    let mut chart = ChartBuilder::on(&root)
        .caption(spec.title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(64)
        .build_cartesian_2d(spec.x.clone(), spec.y.clone())?;
    let y_span = y1 - y0;
    let y_fmt = move |v: &f64| {
        if y_span >= 20.0 {
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
        .y_labels(6)
        .draw()?;
    // A fault that shoppers barely felt still shows: a band at least 1% of
    // the axis wide, and a solid line where it was injected.
    let min_width = (spec.x.end - spec.x.start) * 0.01;
    for (i, band) in marks.bands.iter().enumerate() {
        chart.draw_series(std::iter::once(Rectangle::new(
            [
                (band.from_s, y0),
                (band.to_s.max(band.from_s + min_width), y1),
            ],
            BAND.filled(),
        )))?;
        chart.draw_series(LineSeries::new(
            [(band.from_s, y0), (band.from_s, y1)],
            BAND_TEXT.stroke_width(1),
        ))?;
        // Stagger labels so overlapping faults stay readable.
        let row = (i % 3) as i32;
        chart.draw_series(std::iter::once(
            EmptyElement::at((band.from_s, y1))
                + Text::new(
                    band.label.clone(),
                    (3, 3 + 13 * row),
                    ("sans-serif", 11).into_font().color(&BAND_TEXT),
                ),
        ))?;
    }
    for (i, m) in marks.markers.iter().enumerate() {
        chart.draw_series(DashedLineSeries::new(
            [(m.at_s, y0), (m.at_s, y1)],
            4,
            3,
            MARKER.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((m.at_s, y0))
                + Text::new(
                    m.label.clone(),
                    // Staggered: scale-outs often come in quick succession.
                    (3, -16 - 12 * (i % 4) as i32),
                    ("sans-serif", 11).into_font().color(&MARKER),
                ),
        ))?;
    }
    for s in series {
        let line = style(s);
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.iter().copied(), 6, 4, line))?
        } else {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), line))?
        };
        drawn
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], line));
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 205, 215))
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()?;
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
            BLUE_.filled(),
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
                GREEN_,
                (0..60).map(|t| (t as f64, 50.0)).collect(),
            )]
        };
        let svg = time_chart(&spec(), &flat(), &marks);
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("Requests per second"));
        assert!(svg.contains("kill-pod cart"));
        assert!(svg.contains("catalogue 2→3"));
        assert!(svg.contains("<polyline"), "the line is drawn");
        // Same input, same bytes: reports re-render identically.
        assert_eq!(svg, time_chart(&spec(), &flat(), &marks));
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
