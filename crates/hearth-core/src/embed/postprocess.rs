//! What happens to a pooled, normalized vector after the model.

/// Matryoshka truncation as nomic-embed-text-v1.5 prescribes: layer norm over the full vector, keep the first
/// `dims` components, L2-normalize. Layer norm ignores the vector's scale, so the unit-norm input fastembed hands
/// back gives the same result as the raw pooled one.
pub fn matryoshka(vector: &[f32], dims: usize) -> Vec<f32> {
    const EPSILON: f32 = 1e-5;
    let n = vector.len() as f32;
    let mean = vector.iter().sum::<f32>() / n;
    let variance = vector.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let scale = 1.0 / (variance + EPSILON).sqrt();
    let mut out: Vec<f32> = vector.iter().take(dims).map(|x| (x - mean) * scale).collect();
    l2_normalize(&mut out);
    out
}

pub(crate) fn l2_normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matryoshka_truncates_to_a_unit_vector() {
        let v: Vec<f32> = (0..16).map(|i| (i as f32).sin()).collect();
        let out = matryoshka(&v, 8);
        assert_eq!(out.len(), 8);
        let norm: f32 = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn matryoshka_ignores_input_scale() {
        let v: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).cos()).collect();
        let scaled: Vec<f32> = v.iter().map(|x| x * 3.0).collect();
        let a = matryoshka(&v, 8);
        let b = matryoshka(&scaled, 8);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
