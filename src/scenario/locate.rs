//! Where each key of a YAML document is (line and column), so validation
//! errors can point at the text, and a guard against YAML bombs: the document
//! is walked once with saphyr-parser's events, counting nesting depth and the
//! nodes aliases would expand to, before serde builds anything.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser};

/// Nesting deeper than this is refused.
pub const MAX_DEPTH: usize = 32;
/// A document that expands (through aliases) to more nodes than this is refused.
pub const MAX_NODES: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub column: usize,
}

/// Key paths such as `load.journeys.browse` or `faults[1].at`, to positions.
#[derive(Debug, Default)]
pub struct KeyIndex {
    keys: BTreeMap<String, Position>,
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        expect_key: bool,
        anchor: (usize, u64),
    },
    Seq {
        path: String,
        index: usize,
        anchor: (usize, u64),
    },
}

/// The walk over a document's events that builds a [`KeyIndex`].
#[derive(Default)]
struct Walk {
    index: KeyIndex,
    stack: Vec<Frame>,
    anchor_sizes: BTreeMap<usize, u64>,
    nodes: u64,
}

type Refused = (Option<Position>, String);

impl Walk {
    /// A mapping or a sequence starts.
    fn open(&mut self, map: bool, anchor: usize, at: Position) -> Result<(), Refused> {
        self.nodes += 1;
        if self.stack.len() >= MAX_DEPTH {
            return Err((
                Some(at),
                format!("nesting deeper than {MAX_DEPTH} levels is refused"),
            ));
        }
        // (anchor id, node count when this node started)
        let anchor = (anchor, self.nodes);
        let path = child_path(&self.stack);
        self.stack.push(if map {
            Frame::Map {
                path,
                key: None,
                expect_key: true,
                anchor,
            }
        } else {
            Frame::Seq {
                path,
                index: 0,
                anchor,
            }
        });
        Ok(())
    }

    fn close(&mut self) {
        if let Some(
            Frame::Map {
                anchor: (id, start),
                ..
            }
            | Frame::Seq {
                anchor: (id, start),
                ..
            },
        ) = self.stack.pop()
            && id > 0
        {
            self.anchor_sizes.insert(id, self.nodes - start + 1);
        }
        value_done(&mut self.stack);
    }

    fn scalar(&mut self, value: &str, anchor: usize, at: Position) {
        self.nodes += 1;
        if anchor > 0 {
            self.anchor_sizes.insert(anchor, 1);
        }
        match self.stack.last_mut() {
            Some(Frame::Map {
                path,
                key,
                expect_key,
                ..
            }) if *expect_key => {
                let full = if path.is_empty() {
                    value.to_string()
                } else {
                    format!("{path}.{value}")
                };
                self.index.keys.entry(full).or_insert(at);
                *key = Some(value.to_string());
                *expect_key = false;
            }
            _ => value_done(&mut self.stack),
        }
    }

    fn alias(&mut self, anchor: usize) {
        self.nodes += self.anchor_sizes.get(&anchor).copied().unwrap_or(1);
        value_done(&mut self.stack);
    }
}

impl KeyIndex {
    /// Indexes `text`; an error names what was refused and where.
    pub fn build(text: &str) -> Result<Self, Refused> {
        let mut walk = Walk::default();
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| {
                let m = e.marker();
                (
                    Some(Position {
                        line: m.line(),
                        column: m.col() + 1,
                    }),
                    e.info().to_string(),
                )
            })?;
            let at = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::MappingStart(anchor, _) => walk.open(true, anchor, at)?,
                Event::SequenceStart(anchor, _) => walk.open(false, anchor, at)?,
                Event::MappingEnd | Event::SequenceEnd => walk.close(),
                Event::Scalar(value, _, anchor, _) => walk.scalar(&value, anchor, at),
                Event::Alias(anchor) => walk.alias(anchor),
                _ => {}
            }
            if walk.nodes > MAX_NODES {
                return Err((
                    Some(at),
                    format!(
                        "the document expands to more than {MAX_NODES} nodes (alias expansion?); refused"
                    ),
                ));
            }
        }
        Ok(walk.index)
    }

    /// The position of a key path, or of its nearest indexed parent.
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.keys.get(&p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

fn child_path(stack: &[Frame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(Frame::Map { path, key, .. }) => {
            let key = key.as_deref().unwrap_or("?");
            if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            }
        }
        Some(Frame::Seq { path, index, .. }) => format!("{path}[{index}]"),
    }
}

fn value_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { expect_key, .. }) => *expect_key = true,
        Some(Frame::Seq { index, .. }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_block_flow_and_sequence_style() {
        let text = "name: x\nload:\n  journeys: { browse: 60, buy: 0 }\nfaults:\n  - at: 20s\n  - at: 35s\n    db-failover: {}\n";
        let index = KeyIndex::build(text).unwrap();
        assert_eq!(
            index.find("load.journeys.buy"),
            Some(Position {
                line: 3,
                column: 27
            })
        );
        assert_eq!(
            index.find("faults[1].db-failover"),
            Some(Position { line: 7, column: 5 })
        );
        assert_eq!(
            index.find("faults[1].at"),
            Some(Position { line: 6, column: 5 })
        );
        // An unknown child falls back to its parent.
        assert_eq!(
            index.find("load.journeys.nothing"),
            Some(Position { line: 3, column: 3 })
        );
    }

    #[test]
    fn a_billion_laughs_and_deep_nesting_are_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev = "a";
        for n in names {
            bomb.push_str(&format!("{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = n;
        }
        let err = KeyIndex::build(&bomb).unwrap_err();
        assert!(err.1.contains("expands to more than"), "{err:?}");
        let deep = format!("x: {}{}", "[".repeat(100), "]".repeat(100));
        let err = KeyIndex::build(&deep).unwrap_err();
        assert!(err.1.contains("nesting deeper"), "{err:?}");
    }
}
