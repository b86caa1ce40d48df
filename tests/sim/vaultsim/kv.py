"""KV v2 (vault-plugin-secrets-kv path_data.go, path_metadata.go) and KV v1
(vault/logical_passthrough.go)."""

import json
import re
import time

from .common import (SYS_DEFAULT_TTL, Reply, VaultError, field_error,
                     need_op, parse_duration, rfc3339, unsupported_path)


class KvMixin:
    def _route_kv2(self, op, mount, store, rest, data):
        def res(d, status=200):
            return Reply(status, self.logical(data=d, mount_type="kv"))
        m = re.fullmatch(r"data/(.*[^/])", rest)
        if m:
            key = m.group(1)
            need_op(op, "read", "update", "delete")
            with self._lock:
                if op == "update":
                    if not isinstance(data.get("data"), dict):
                        raise VaultError(400, ["no data provided"])
                    return res(self._kv2_write(store, key, data["data"],
                                               data.get("options")))
                if op == "delete":
                    meta = store.get(key)
                    if meta is not None:
                        v = meta["versions"][meta["current_version"]]
                        if not v["deletion_time"]:
                            v["deletion_time"] = time.time()
                            meta["updated_time"] = time.time()
                    return Reply(204)
                return self._kv2_read(store, key, data.get("version"), res)
        m = re.fullmatch(r"metadata/(.*)", rest)
        if m:
            key = m.group(1)
            with self._lock:
                if op == "list":
                    keys = kv_list(store, key)
                    if not keys:
                        raise VaultError(404, [])
                    return res({"keys": keys})
                need_op(op, "read", "delete")
                if op == "delete":
                    store.pop(key.strip("/"), None)
                    return Reply(204)
                meta = store.get(key)
                if meta is None:
                    raise VaultError(404, [])
                return res(kv2_metadata(meta))
        if rest == "config":
            need_op(op, "read")
            return res({"cas_required": False, "delete_version_after": "0s",
                        "max_versions": 0})
        raise unsupported_path()

    @staticmethod
    def _kv2_write(store, key, value, options):
        meta = store.get(key)
        if options is not None and not isinstance(options, dict):
            raise field_error(options, "options", "not a map")
        if options and "cas" in options:
            try:
                cas = int(options["cas"])
            except (TypeError, ValueError):
                raise VaultError(400, ["error parsing check-and-set "
                                       "parameter"])
            current = meta["current_version"] if meta else 0
            if cas != current:
                raise VaultError(400, ["check-and-set parameter did not "
                                       "match the current version"])
        now = time.time()
        if meta is None:
            meta = store[key] = {"versions": {}, "current_version": 0,
                                 "oldest_version": 0, "created_time": now,
                                 "updated_time": now,
                                 "custom_metadata": None}
        meta["current_version"] += 1
        if not meta["oldest_version"]:
            meta["oldest_version"] = 1
        meta["updated_time"] = now
        v = {"data": json.loads(json.dumps(value)), "created_time": now,
             "deletion_time": None, "destroyed": False}
        meta["versions"][meta["current_version"]] = v
        return kv2_version_meta(meta, meta["current_version"])

    @staticmethod
    def _kv2_read(store, key, version, res):
        meta = store.get(key)
        if meta is None:
            raise VaultError(404, [])
        n = meta["current_version"]
        try:
            if version not in (None, "", 0, "0"):
                n = int(version)
        except ValueError:
            raise field_error(version, "version", "invalid syntax")
        v = meta["versions"].get(n)
        if v is None:
            raise VaultError(404, [])
        body = {"data": None, "metadata": kv2_version_meta(meta, n)}
        deleted = v["deletion_time"] and v["deletion_time"] <= time.time()
        if deleted or v["destroyed"]:
            # path_data.go: metadata with a 404 (RespondWithStatusCode)
            raise VaultError(404, [], body=res(body).obj)
        body["data"] = json.loads(json.dumps(v["data"]))
        return res(body)

    def _route_kv1(self, op, store, rest, data):
        with self._lock:
            if op == "list":
                keys = kv_list(store, rest)
                if not keys:
                    raise VaultError(404, [])
                return Reply(200, self.logical(data={"keys": keys},
                                               mount_type="kv"))
            if not rest or rest.endswith("/"):
                raise unsupported_path()
            need_op(op, "read", "update", "delete")
            if op == "update":
                if not data:
                    raise VaultError(400, ["missing data fields"])
                store[rest] = json.loads(json.dumps(data))
                return Reply(204)
            if op == "delete":
                store.pop(rest, None)
                return Reply(204)
            value = store.get(rest)
            if value is None:
                raise VaultError(404, [])
            # handleRead: the TTL is the "ttl"/"lease" key or the mount
            # default, returned as a refresh hint without a lease
            # (request_handling.go: kv mounts do not register leases).
            ttl = SYS_DEFAULT_TTL
            hint = value.get("ttl", value.get("lease"))
            if hint is not None:
                try:
                    ttl = parse_duration(hint, "ttl")
                except VaultError:
                    pass        # an unparsable hint keeps the default
            return Reply(200, self.logical(
                data=json.loads(json.dumps(value)), lease_duration=ttl,
                mount_type="kv"))


def kv_list(store, prefix):
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    keys = set()
    for k in store:
        if k.startswith(prefix):
            head, sep, _ = k[len(prefix):].partition("/")
            keys.add(head + sep)
    return sorted(keys)


def kv2_version_meta(meta, n):
    v = meta["versions"][n]
    return {"created_time": rfc3339(v["created_time"]),
            "custom_metadata": meta["custom_metadata"],
            "deletion_time": rfc3339(v["deletion_time"]) or "",
            "destroyed": v["destroyed"], "version": n}


def kv2_metadata(meta):
    return {"cas_required": False,
            "created_time": rfc3339(meta["created_time"]),
            "current_version": meta["current_version"],
            "custom_metadata": meta["custom_metadata"],
            "delete_version_after": "0s", "max_versions": 0,
            "oldest_version": meta["oldest_version"],
            "updated_time": rfc3339(meta["updated_time"]),
            "versions": {str(n): {"created_time": rfc3339(v["created_time"]),
                                  "deletion_time":
                                  rfc3339(v["deletion_time"]) or "",
                                  "destroyed": v["destroyed"]}
                         for n, v in meta["versions"].items()}}
