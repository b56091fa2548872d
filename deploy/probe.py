#!/usr/bin/python3
"""The kubelet's gRPC probes, for a local run: grpc.health.v1 Check (or Watch) against a port.

    probe.py check ADDRESS SERVICE          prints SERVING / NOT_SERVING / ..., exits 0 if SERVING
    probe.py watch ADDRESS SERVICE          prints each status as it changes until the stream ends

Stubs are generated from Debian's grpc-proto at start (Debian has no grpcio-health-checking).
"""
import subprocess
import sys
import tempfile

import grpc

with tempfile.TemporaryDirectory() as gen:
    # -I at the proto's own folder, so the generated module does not shadow the grpc package.
    subprocess.run(["protoc", "-I", "/usr/share/grpc-proto/grpc/health/v1", f"--python_out={gen}",
                    f"--grpc_out={gen}", "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    "health.proto"], check=True)
    sys.path.insert(0, gen)
    import health_pb2
    import health_pb2_grpc

mode, address, service = sys.argv[1], sys.argv[2], sys.argv[3]
stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(address))
name = health_pb2.HealthCheckResponse.ServingStatus.Name
try:
    if mode == "check":
        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
        print(name(status))
        sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)
    for r in stub.Watch(health_pb2.HealthCheckRequest(service=service)):
        print(name(r.status), flush=True)
except grpc.RpcError as e:
    print(f"{e.code().name}: {e.details()}", flush=True)
    sys.exit(2 if mode == "check" else 0)
