//! `Status`: the sender's party sees where its alert stands with each recipient unit (who
//! acknowledged, when); another party learns nothing, not even that the alert exists.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use filet_proto::wire::ErrorCode;
use filet_tests::*;

#[tokio::test]
async fn the_senders_party_sees_who_acknowledged_and_another_party_learns_nothing() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();
    let dpj = net.node("DPJ/RTS", relay.addr).await;
    let ack_index = dpj.ack(receipt.alert).await.unwrap();

    let st = esm.status(receipt.alert).await.unwrap();
    let units: Vec<String> = st.iter().map(|r| r.unit.to_string()).collect();
    let receipt_units: Vec<String> = receipt
        .recipients
        .iter()
        .map(|r| r.unit.to_string())
        .collect();
    assert_eq!(
        units, receipt_units,
        "one line per recipient of the receipt"
    );
    for (r, x) in st.iter().zip(&receipt.recipients) {
        assert_eq!(r.rules, x.rules);
        assert_eq!(r.fields, x.fields);
        assert_eq!(r.disclosed_index, x.audit_index);
        assert!(!r.legal_bases.is_empty(), "{} has its legal basis", r.unit);
    }
    let line = st.iter().find(|r| r.unit.to_string() == "DPJ/RTS").unwrap();
    let (node, _, index) = line.acked.clone().expect("DPJ/RTS acknowledged");
    assert_eq!(node.unit.to_string(), "DPJ/RTS");
    assert_eq!(index, ack_index);
    let cjq = st
        .iter()
        .find(|r| r.unit.to_string() == "CJQ/PIVOT")
        .unwrap();
    assert_eq!(cjq.acked, None, "CJQ/PIVOT has not acknowledged");

    // Another unit of the sender's party may ask; a recipient of another party may not.
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    assert_eq!(ijp.status(receipt.alert).await.unwrap().len(), st.len());
    let e = refusal(dpj.status(receipt.alert).await);
    assert_eq!(e.code, ErrorCode::UnknownAlert);
    let unknown = filet_proto::AlertId::from_parts(1, [7; 10]);
    let e2 = refusal(dpj.status(unknown).await);
    assert_eq!(
        e2.code,
        ErrorCode::UnknownAlert,
        "the same answer as for an alert that does not exist"
    );
    for n in [esm, dpj, ijp] {
        n.close().await;
    }
    relay.stop().await;
}
