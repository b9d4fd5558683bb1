//! XLSX output: the annex as printed, with its two header rows, merged group titles,
//! the "Tổng" row in bold and rows below 50% online in red.

use crate::ReportError;
use crate::layout::{Cell, Report};
use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};

/// Name of the one worksheet.
pub const SHEET: &str = "Phụ lục";

fn err(e: XlsxError) -> ReportError {
    ReportError::Export {
        format: "xlsx",
        detail: e.to_string(),
    }
}

/// The report as an XLSX workbook. Layout: title (row 1), period (row 2), locality
/// (row 3, may be empty), a blank row, two header rows, then the rows and "Tổng".
/// Rates are written as the annexes write them (text like `87,76%`), counts as numbers.
pub fn to_xlsx(r: &Report) -> Result<Vec<u8>, ReportError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(SHEET).map_err(err)?;
    let n = r.columns.len() as u16;
    let title = Format::new().set_bold().set_align(FormatAlign::Center);
    let centred = Format::new().set_align(FormatAlign::Center);
    ws.merge_range(0, 0, 0, n - 1, &r.title.to_uppercase(), &title)
        .map_err(err)?;
    ws.merge_range(1, 0, 1, n - 1, &format!("({})", r.period), &centred)
        .map_err(err)?;
    ws.merge_range(2, 0, 2, n - 1, r.place.as_deref().unwrap_or(""), &centred)
        .map_err(err)?;
    let (h1, h2) = (4u32, 5u32);
    write_header(ws, r, h1, h2)?;
    write_body(ws, r, h2 + 1)?;
    for (c, col) in r.columns.iter().enumerate() {
        let width = match col.key {
            "stt" => 5.0,
            "service_vi" | "service_name" => 60.0,
            _ if col.kind == crate::layout::Kind::Text => 18.0,
            _ => 12.0,
        };
        ws.set_column_width(c as u16, width).map_err(err)?;
    }
    ws.set_freeze_panes(h2 + 1, 0).map_err(err)?;
    wb.save_to_buffer().map_err(err)
}

/// The two header rows: a column's group merged above the columns sharing it.
fn write_header(ws: &mut Worksheet, r: &Report, h1: u32, h2: u32) -> Result<(), ReportError> {
    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color(Color::RGB(0xDDEBF7));
    let mut c = 0usize;
    while c < r.columns.len() {
        let col = &r.columns[c];
        let Some(g) = col.group else {
            ws.merge_range(h1, c as u16, h2, c as u16, col.vi, &head)
                .map_err(err)?;
            c += 1;
            continue;
        };
        let end = c + r.columns[c..]
            .iter()
            .take_while(|o| o.group == Some(g))
            .count();
        if end - c > 1 {
            ws.merge_range(h1, c as u16, h1, end as u16 - 1, g, &head)
                .map_err(err)?;
        } else {
            ws.write_string_with_format(h1, c as u16, g, &head)
                .map_err(err)?;
        }
        for (i, o) in r.columns[c..end].iter().enumerate() {
            ws.write_string_with_format(h2, (c + i) as u16, o.vi, &head)
                .map_err(err)?;
        }
        c = end;
    }
    Ok(())
}

/// The rows from `first`, those below 50% in red, then the "Tổng" row in bold.
fn write_body(ws: &mut Worksheet, r: &Report, first: u32) -> Result<(), ReportError> {
    let cell = Format::new().set_border(FormatBorder::Thin).set_text_wrap();
    let red = cell
        .clone()
        .set_font_color(Color::RGB(0x9C0006))
        .set_background_color(Color::RGB(0xFFC7CE));
    let bold = cell.clone().set_bold();
    let body = r.rows.iter().enumerate().map(|(i, cells)| {
        let f = if r.below_half.contains(&i) {
            &red
        } else {
            &cell
        };
        (cells, f)
    });
    for (row, (cells, f)) in (first..).zip(body.chain(r.total.iter().map(|t| (t, &bold)))) {
        for (c, v) in cells.iter().enumerate() {
            let c = c as u16;
            match v {
                Cell::Empty | Cell::Float(None) => ws.write_blank(row, c, f),
                Cell::Int(x) => ws.write_number_with_format(row, c, *x as f64, f),
                Cell::Float(Some(x)) => ws.write_number_with_format(row, c, *x, f),
                Cell::Text(s) => ws.write_string_with_format(row, c, s, f),
            }
            .map_err(err)?;
        }
    }
    Ok(())
}
