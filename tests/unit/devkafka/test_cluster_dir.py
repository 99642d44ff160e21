"""The cluster folder: one cluster id across runs, storage formatted only when new."""

from __future__ import annotations

from pathlib import Path

from eventplatform.devkafka.local import ClusterDir, node_properties


def test_the_cluster_id_is_drawn_once_and_kept(tmp_path: Path) -> None:
    first = ClusterDir(tmp_path / "kafka", persistent=True).cluster_id()
    again = ClusterDir(tmp_path / "kafka", persistent=True).cluster_id()
    assert first == again
    assert (tmp_path / "kafka" / "cluster.id").read_text().strip() == first


def test_a_log_dir_formatted_elsewhere_lends_its_id(tmp_path: Path) -> None:
    cluster = ClusterDir(tmp_path, persistent=True)
    node = cluster.node(1, port=1, controller_port=2)
    assert not cluster.is_formatted(node)
    node.log_dir.mkdir()
    (node.log_dir / "meta.properties").write_text("version=1\ncluster.id=abcDEF123\nnode.id=1\n")
    assert cluster.is_formatted(node)
    assert cluster.cluster_id() == "abcDEF123"


def test_only_a_temporary_folder_is_discarded(tmp_path: Path) -> None:
    kept, temporary = tmp_path / "kept", tmp_path / "temporary"
    for path, persistent in ((kept, True), (temporary, False)):
        cluster = ClusterDir(path, persistent=persistent)
        cluster.node(1, port=1, controller_port=2)
        cluster.discard()
    assert kept.exists()
    assert not temporary.exists()


def test_node_properties_name_the_node_ports_and_folder(tmp_path: Path) -> None:
    node = ClusterDir(tmp_path, persistent=False).node(2, port=9092, controller_port=9093)
    props = node_properties(node, version="4.4.0", voters="2@127.0.0.1:9093")
    assert props["node.id"] == "2"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "node-2" / "data")
    assert "share.coordinator.state.topic.min.isr" in props
    assert "share.coordinator.state.topic.min.isr" not in node_properties(
        node, version="3.9.1", voters="2@127.0.0.1:9093"
    )
