//! Bounds checked on the raw text before any YAML parser sees it: document size and
//! nesting depth. Deep nesting costs the parser super-linear time (80,000 levels in 164 KB
//! took half a minute), and a stuck reload delays every good change behind it.

/// Bytes per document at most (a 10,000-pod inventory's documents are ~1 KB each).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Bytes per inventory file at most.
pub const MAX_FILE_BYTES: u64 = 128 << 20;
/// Nesting (block indentation levels, compact `- -` entries and `[`/`{`) at most.
pub const MAX_DEPTH: usize = 64;

/// Why a document was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("{bytes} bytes: larger than the {MAX_DOCUMENT_BYTES}-byte limit for one document")]
    TooLarge { bytes: usize },
    #[error("nested deeper than {MAX_DEPTH} levels (line {line})")]
    TooDeep { line: usize },
}

/// Checks a document's size and nesting in one linear pass.
pub fn check(doc: &str) -> Result<(), BoundsError> {
    if doc.len() > MAX_DOCUMENT_BYTES {
        return Err(BoundsError::TooLarge { bytes: doc.len() });
    }
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (i, line) in doc.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let indent = line.len() - body.len();
        if flow == 0 && !body.is_empty() && !body.starts_with('#') {
            while indents.last().is_some_and(|top| *top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let compact = compact_entries(body);
        let deepest;
        (flow, deepest) = flow_depth(body, flow);
        if indents.len() + compact + deepest > MAX_DEPTH {
            return Err(BoundsError::TooDeep { line: i + 1 });
        }
    }
    Ok(())
}

/// `- - - x`: sequence entries opened on one line.
fn compact_entries(body: &str) -> usize {
    let mut n = 0;
    let mut rest = body;
    while let Some(next) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
        n += 1;
        rest = next.trim_start_matches(' ');
    }
    n
}

/// The flow nesting (`[`, `{`) after `line` and the deepest point within it, starting from
/// `depth`; quoted scalars and comments do not count.
fn flow_depth(line: &str, mut depth: usize) -> (usize, usize) {
    let mut quote: Option<u8> = None;
    let bytes = line.as_bytes();
    let mut deepest = depth;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => {
                // '' inside single quotes is an escaped quote.
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'#' if i == 0 || bytes[i - 1] == b' ' => break,
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        i += 1;
    }
    (depth, deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_pass() {
        let doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: {app: \"x[\", 'b': '{'}\n  # [[[[\nspec:\n  containers:\n  - name: c\n    ports: [{name: http, containerPort: 80}]\n";
        assert_eq!(check(doc), Ok(()));
    }

    #[test]
    fn deep_flow_block_and_compact_nesting_are_refused() {
        let flow = format!("a: {}{}\n", "[".repeat(80_000), "]".repeat(80_000));
        assert!(matches!(check(&flow), Err(BoundsError::TooDeep { line: 1 })));
        let block: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(matches!(check(&block), Err(BoundsError::TooDeep { .. })));
        let compact = format!("{}x\n", "- ".repeat(100));
        assert!(matches!(check(&compact), Err(BoundsError::TooDeep { line: 1 })));
        let multi_line_flow: String = (0..100).map(|_| "[\n").collect();
        assert!(matches!(check(&multi_line_flow), Err(BoundsError::TooDeep { .. })));
        assert!(matches!(check(&"x".repeat(MAX_DOCUMENT_BYTES + 1)), Err(BoundsError::TooLarge { .. })));
    }

    /// An accepted document of `bytes` (about), read to its end: block nesting rising to 60
    /// levels and back, flow collections, quotes with brackets inside, compact entries.
    fn wide_document(bytes: usize) -> String {
        let mut chunk = String::new();
        for level in 0..60 {
            chunk += &format!("{}k{level}:\n", " ".repeat(level));
        }
        chunk += "top: [a, {b: \"c]\", d: 'e''['}, [f, [g]]]\n- - - x # [[[\n";
        chunk.repeat(bytes / chunk.len() + 1)
    }

    /// Linear time, from two sizes 16x apart: the larger takes well under 16x16 (quadratic)
    /// the time of the smaller; the fastest of five runs each, so noise counts little.
    #[test]
    fn checking_takes_linear_time() {
        let (small, large) =
            (wide_document(MAX_DOCUMENT_BYTES / 16), wide_document(MAX_DOCUMENT_BYTES - 4096));
        let large = &large[..large[..MAX_DOCUMENT_BYTES - 4096].rfind('\n').unwrap_or(0) + 1];
        assert!(large.len() >= small.len() * 15, "{} vs {}", large.len(), small.len());
        let fastest = |doc: &str| {
            (0..5)
                .map(|_| {
                    let started = std::time::Instant::now();
                    assert_eq!(check(std::hint::black_box(doc)), Ok(()));
                    started.elapsed()
                })
                .min()
                .unwrap_or_default()
        };
        let (a, b) = (fastest(small.as_str()), fastest(large));
        let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        eprintln!("measured: {} bytes in {a:?}, {} bytes in {b:?}: x{ratio:.1}", small.len(), large.len());
        assert!(ratio < 64.0, "16x the input took x{ratio:.1} the time (linear: ~16, quadratic: ~256)");
    }
}
