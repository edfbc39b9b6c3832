"""PCI vendor, device and class names from the inspected system's pci.ids.

The names come from the first pci.ids found inside the host's root (the hwdata and
pciutils locations, plain or gzipped); when there is none, a small built-in excerpt
(probes/data/pci-fallback.json) names NVIDIA's cards, virtio devices and the emulated
display adapters of hypervisors. `PciNames.source` says which one answered.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
from typing import Dict, Optional, Tuple

from probes.host import Host

# Where distributions install pci.ids, most common first (hwdata: Fedora/RHEL/Arch,
# misc: Debian/Ubuntu pciutils, the rest: older or hand-made installs).
PCI_IDS_LOCATIONS = (
    "/usr/share/hwdata/pci.ids",
    "/usr/share/misc/pci.ids",
    "/usr/share/pci.ids",
    "/usr/share/pciids/pci.ids",
    "/var/lib/pciutils/pci.ids",
    "/usr/share/hwdata/pci.ids.gz",
    "/usr/share/misc/pci.ids.gz",
)

FALLBACK_FILE = os.path.join(os.path.dirname(__file__), "data", "pci-fallback.json")
MAX_PCI_IDS_BYTES = 8 * 1024 * 1024  # the real file is ~1.4 MB; anything bigger is not pci.ids


@dataclasses.dataclass(frozen=True)
class PciNames:
    """Lookup tables; keys are lower-case hex without 0x."""

    source: Optional[str]  # inspected path of pci.ids, or None for the built-in excerpt
    vendors: Dict[str, str]
    devices: Dict[Tuple[str, str], str]
    subsystems: Dict[Tuple[str, str, str, str], str]
    classes: Dict[str, str]  # "03", "0302", "030200"

    def vendor(self, vendor_id: str) -> Optional[str]:
        return self.vendors.get(_key(vendor_id))

    def device(self, vendor_id: str, device_id: str) -> Optional[str]:
        return self.devices.get((_key(vendor_id), _key(device_id)))

    def subsystem(self, vendor_id: str, device_id: str, sub_vendor: str, sub_device: str) -> Optional[str]:
        return self.subsystems.get((_key(vendor_id), _key(device_id), _key(sub_vendor), _key(sub_device)))

    def class_name(self, class_code: str) -> Optional[str]:
        """The most specific name for a 6-digit class code (prog-if, then subclass, then class)."""
        code = _key(class_code).rjust(6, "0")
        for key in (code, code[:4], code[:2]):
            if key in self.classes:
                return self.classes[key]
        return None


def _key(value: str) -> str:
    value = (value or "").strip().lower()
    return value[2:] if value.startswith("0x") else value


def parse_pci_ids(text: str, source: Optional[str] = None) -> PciNames:
    """Parse pci.ids' format: vendors, tab-indented devices, two-tab subsystems, `C` classes."""
    vendors: Dict[str, str] = {}
    devices: Dict[Tuple[str, str], str] = {}
    subsystems: Dict[Tuple[str, str, str, str], str] = {}
    classes: Dict[str, str] = {}
    vendor = device = None
    cls = subcls = None
    in_classes = False
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        depth = len(raw) - len(raw.lstrip("\t"))
        line = raw.strip()
        if depth == 0:
            if line.startswith("C ") and len(line) > 2:
                in_classes = True
                code, _, name = line[2:].partition(" ")
                cls, subcls = code.lower(), None
                classes[cls] = name.strip()
                continue
            in_classes = False
            code, _, name = line.partition(" ")
            if len(code) == 4:
                vendor, device = code.lower(), None
                vendors[vendor] = name.strip()
            else:
                vendor = None  # another top-level list (e.g. "X", "V"): not ours
            continue
        if in_classes:
            code, _, name = line.partition(" ")
            if depth == 1 and cls is not None:
                subcls = cls + code.lower()
                classes[subcls] = name.strip()
            elif depth == 2 and subcls is not None:
                classes[subcls + code.lower()] = name.strip()
            continue
        if vendor is None:
            continue
        if depth == 1:
            code, _, name = line.partition(" ")
            device = code.lower()
            devices[(vendor, device)] = name.strip()
        elif depth == 2 and device is not None:
            parts = line.split(None, 2)
            if len(parts) == 3:
                subsystems[(vendor, device, parts[0].lower(), parts[1].lower())] = parts[2].strip()
    return PciNames(source, vendors, devices, subsystems, classes)


def builtin_names() -> PciNames:
    """The built-in excerpt, for systems without pci.ids."""
    with open(FALLBACK_FILE, encoding="utf-8") as fh:
        data = json.load(fh)
    devices = {
        (v, d): name for v, table in data["devices"].items() for d, name in table.items()
    }
    return PciNames(None, dict(data["vendors"]), devices, {}, dict(data["classes"]))


def load(host: Host) -> PciNames:
    """Names from the host's pci.ids, or the built-in excerpt when it has none."""
    for location in PCI_IDS_LOCATIONS:
        data = host.read_bytes(location, limit=MAX_PCI_IDS_BYTES)
        if not data:
            continue
        if location.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
        names = parse_pci_ids(data.decode("utf-8", "replace"), location)
        if names.vendors:
            return _with_fallback_classes(names)
    return builtin_names()


def _with_fallback_classes(names: PciNames) -> PciNames:
    # Some hand-made pci.ids lack the class list; class names still help the reader.
    if names.classes:
        return names
    return dataclasses.replace(names, classes=builtin_names().classes)
