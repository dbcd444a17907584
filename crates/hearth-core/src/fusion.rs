//! Hybrid search's fusion of the vector and keyword rankings into one.
//!
//! Equal-weight reciprocal rank fusion let a weak keyword ranking pull right answers down (hybrid scored below
//! vector alone). Fusion here weighs each retriever's scores, not only its ranks, so a retriever that is sure
//! (one hit far ahead of the rest) counts for more than one that is not. The kind and weight hearthd uses,
//! [`HYBRID`], were chosen on development corpora by `cargo xtask bench quality`, which shows the alternatives.

use std::collections::HashMap;

use hearth_api::search::Retriever;

use crate::store::search::Ranked;

/// How two rankings become one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: `weight / (k + rank)` summed over the retrievers; scores are ignored.
    ReciprocalRank { k: f64, vector_weight: f64 },
    /// Each ranking's scores scaled to [0, 1] between its lowest and highest, then a weighted sum; a chunk one
    /// retriever did not return counts 0 there.
    RelativeScore { vector_weight: f64 },
}

/// What hearthd's hybrid search uses.
pub const HYBRID: Fusion = Fusion::RelativeScore { vector_weight: 0.6 };

/// A chunk in the fused ranking, with the retrievers that returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    pub chunk_id: i64,
    pub score: f64,
    pub retrievers: Vec<Retriever>,
}

/// One retriever's ranking as the result: its own order and score, cut to `k`.
pub fn single(retriever: Retriever, ranked: Vec<Ranked>, k: usize) -> Vec<Fused> {
    ranked
        .into_iter()
        .take(k)
        .map(|r| Fused {
            chunk_id: r.chunk_id,
            score: r.score,
            retrievers: vec![retriever],
        })
        .collect()
}

/// Fuses two rankings (best first) into at most `k` chunks, best first; ties go to the lower chunk id.
pub fn fuse(fusion: Fusion, vector: &[Ranked], keyword: &[Ranked], k: usize) -> Vec<Fused> {
    let mut fused: HashMap<i64, Fused> = HashMap::new();
    let vector_weight = match fusion {
        Fusion::ReciprocalRank { vector_weight, .. } | Fusion::RelativeScore { vector_weight } => {
            vector_weight
        }
    };
    for (name, ranked, weight) in [
        (Retriever::Vector, vector, vector_weight),
        (Retriever::Keyword, keyword, 1.0 - vector_weight),
    ] {
        let scores = match fusion {
            Fusion::ReciprocalRank { k, .. } => reciprocal_ranks(ranked.len(), k),
            Fusion::RelativeScore { .. } => relative_scores(ranked),
        };
        for (hit, score) in ranked.iter().zip(scores) {
            let entry = fused.entry(hit.chunk_id).or_insert(Fused {
                chunk_id: hit.chunk_id,
                score: 0.0,
                retrievers: Vec::new(),
            });
            entry.score += weight * score;
            entry.retrievers.push(name);
        }
    }
    let mut order: Vec<Fused> = fused.into_values().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.chunk_id.cmp(&b.chunk_id)));
    order.truncate(k);
    order
}

fn reciprocal_ranks(len: usize, k: f64) -> Vec<f64> {
    (0..len).map(|rank| 1.0 / (k + rank as f64 + 1.0)).collect()
}

/// Scores scaled to [0, 1]; when all are equal (or there is one), each counts fully.
fn relative_scores(ranked: &[Ranked]) -> Vec<f64> {
    let highest = ranked.iter().map(|r| r.score).fold(f64::NEG_INFINITY, f64::max);
    let lowest = ranked.iter().map(|r| r.score).fold(f64::INFINITY, f64::min);
    let spread = highest - lowest;
    ranked
        .iter()
        .map(|r| {
            if spread > f64::EPSILON {
                (r.score - lowest) / spread
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(pairs: &[(i64, f64)]) -> Vec<Ranked> {
        pairs
            .iter()
            .map(|&(chunk_id, score)| Ranked { chunk_id, score })
            .collect()
    }

    #[test]
    fn a_chunk_both_retrievers_found_beats_one_only_one_found() {
        let vector = ranked(&[(1, 0.9), (2, 0.8), (3, 0.1)]);
        let keyword = ranked(&[(2, 12.0), (4, 11.0), (5, 1.0)]);
        for fusion in [
            HYBRID,
            Fusion::ReciprocalRank {
                k: 60.0,
                vector_weight: 0.5,
            },
        ] {
            let fused = fuse(fusion, &vector, &keyword, 10);
            assert_eq!(fused[0].chunk_id, 2, "{fusion:?}: {fused:?}");
            assert_eq!(fused[0].retrievers, [Retriever::Vector, Retriever::Keyword]);
            assert_eq!(fused.len(), 5);
        }
    }

    #[test]
    fn a_retriever_far_surer_of_one_chunk_wins_it_first_place() {
        // The vector retriever is sure of chunk 1 and lukewarm about the rest; chunk 7 is near the top of both
        // lists. Rank fusion puts 7 first (found twice), relative fusion the chunk one retriever is sure of.
        let vector = ranked(&[(1, 0.9), (2, 0.2), (7, 0.19)]);
        let keyword = ranked(&[(8, 10.0), (7, 9.9), (9, 0.1)]);
        let relative = fuse(Fusion::RelativeScore { vector_weight: 0.6 }, &vector, &keyword, 3);
        assert_eq!(relative[0].chunk_id, 1, "{relative:?}");
        let by_rank = fuse(
            Fusion::ReciprocalRank {
                k: 60.0,
                vector_weight: 0.6,
            },
            &vector,
            &keyword,
            3,
        );
        assert_eq!(by_rank[0].chunk_id, 7, "{by_rank:?}");
    }

    #[test]
    fn weight_one_keeps_the_vector_order() {
        let vector = ranked(&[(3, 0.9), (1, 0.5), (2, 0.4)]);
        let keyword = ranked(&[(2, 9.0), (1, 8.0)]);
        let fused = fuse(Fusion::RelativeScore { vector_weight: 1.0 }, &vector, &keyword, 2);
        let ids: Vec<i64> = fused.iter().map(|f| f.chunk_id).collect();
        assert_eq!(ids, [3, 1]);
        assert!(fuse(HYBRID, &[], &[], 5).is_empty());
        let only = fuse(HYBRID, &[], &keyword, 5);
        assert_eq!(only.len(), 2);
    }
}
