"""The load probe's measured driver facts reach the scanner's era-D driver filter."""
import inspect

from probes import report, scanner


def test_probe_facts_are_read_from_the_contract_probe_shape():
    probe = {"libcuda": {"driver_version": 12080, "devices": [{"index": 0, "compute": "9.0"}]},
             "nvml": {"driver_version": "545.23.08"}}
    assert report._probe_facts(probe) == {"driver_major": 545, "cuda_driver_api": 12080, "compute": (9, 0)}


def test_a_failed_probe_gives_no_facts():
    assert report._probe_facts({"libcuda": {"driver_version": None, "devices": []},
                                "nvml": {"driver_version": None}}) == {}
    assert report._probe_facts(None) == {}


def test_the_scanner_takes_every_fact_the_report_passes():
    params = inspect.signature(scanner.analyze).parameters
    for name in report._probe_facts({"libcuda": {"driver_version": 1, "devices": [{"compute": "8.6"}]},
                                     "nvml": {"driver_version": "550.1"}}):
        assert name in params
