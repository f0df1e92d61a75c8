//! Small helpers for writing metric families with prometheus-client's descriptor encoder.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

pub(super) type Enc<'a> = DescriptorEncoder<'a>;

pub(super) fn gauge_family<'a, L>(
    enc: &mut Enc<'a>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
{
    family(enc, name, help, MetricType::Gauge, samples)
}

pub(super) fn family<'a, L>(
    enc: &mut Enc<'a>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
{
    let mut m = enc.encode_descriptor(name, help, None, metric_type)?;
    for (labels, v) in samples {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

pub(super) fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

pub(super) const NO_LABELS: [(&str, &str); 0] = [];
