#[tokio::test]
async fn probe() {
    let mut cfg = llmscope_cluster::ClusterConfig::default();
    cfg.nats_url = Some("nats://127.0.0.1:4222".into());
    cfg.nats_prefix = "probe1".into();
    let n = llmscope_cluster::Nats::connect(&cfg, "probe", true).await;
    println!("{:?}", n.as_ref().err());
    let n = n.unwrap();
    let s = n.stream().await.unwrap();
    let c: async_nats::jetstream::consumer::PullConsumer = s.get_consumer("probe1-spc-3").await.unwrap();
    println!("{:?}", c.get_info().await.map(|i| i.ack_floor));
    println!("{:?}", n.cluster_kv.create("lease.1", "x".into()).await);
    println!("{:?}", n.cluster_kv.create("lease.1", "x".into()).await.map_err(|e| e.kind()));
    let mut keys = n.cluster_kv.keys().await.unwrap();
    use futures::StreamExt;
    while let Some(k) = keys.next().await { println!("key {k:?}"); }
    n.delete_all().await.unwrap();
}
