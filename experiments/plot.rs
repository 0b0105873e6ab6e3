//! R@5 (image→text, text→image) of every Flickr8k-CN experiment in experiments/results.jsonl,
//! one pair of bars per run, in the order they were run: `cargo run --release --example plot`.
use plotters::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let text = std::fs::read_to_string(root.join("results.jsonl"))?;
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if v["dataset"]
            .as_str()
            .is_some_and(|d| d.starts_with("flickr8k-cn"))
        {
            let name = v["name"].as_str().unwrap_or("?").to_string();
            let (a, b) = (
                v["i2t"]["r5"].as_f64().unwrap_or(0.0),
                v["t2i"]["r5"].as_f64().unwrap_or(0.0),
            );
            // A name run again replaces its earlier row.
            rows.retain(|r| r.0 != name);
            rows.push((name, a, b));
        }
    }
    let h = 80 + 26 * rows.len() as u32;
    let out = root.join("recall.svg");
    let area = SVGBackend::new(&out, (900, h)).into_drawing_area();
    area.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "Flickr8k-CN val R@5 per configuration (blue: image→text, orange: text→image)",
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(200)
        .build_cartesian_2d(0f64..70f64, 0f64..rows.len() as f64)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("R@5 (%)")
        .draw()?;
    let n = rows.len() as f64;
    // One name per row, drawn beside the axis (mesh labels would skip rows).
    let (px0, py0) = (200 - 8, 10 + 20);
    let row_h = (h as f64 - 30.0 - 10.0 - 20.0 - 10.0) / n;
    for (i, (name, _, _)) in rows.iter().enumerate() {
        let y = py0 + ((i as f64 + 0.5) * row_h) as i32;
        area.draw(&Text::new(
            name.clone(),
            (px0 - 6 * name.len() as i32, y - 6),
            ("sans-serif", 12),
        ))?;
    }
    for (i, (_, a, b)) in rows.iter().enumerate() {
        let y = n - i as f64 - 1.0;
        chart.draw_series([Rectangle::new(
            [(0.0, y + 0.5), (*a, y + 0.9)],
            BLUE.mix(0.7).filled(),
        )])?;
        chart.draw_series([Rectangle::new(
            [(0.0, y + 0.1), (*b, y + 0.5)],
            RGBColor(230, 130, 30).filled(),
        )])?;
    }
    for (x, label) in [
        (48.8, "Klein et al. mean w2v + CCA i2t"),
        (60.0, "target i2t"),
    ] {
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, n)], BLACK.mix(0.4)))?
            .label(label);
    }
    area.present()?;
    println!("{} ({} runs)", out.display(), rows.len());
    Ok(())
}
