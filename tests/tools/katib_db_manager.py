"""A stand-in for Katib's katib-db-manager in tests: a real gRPC server (python3-grpcio) that
implements api.v1.beta1.DBManager/ReportObservationLog from the stubs of
proto/katib/v1beta1/api.proto and records every request it receives.

    sys.path.insert(0, STUB_DIR)                 # tests/tools/grpc_stubs.sh output
    from katib_db_manager import FakeDbManager
    db = FakeDbManager(fail_first=2)             # answer UNAVAILABLE twice, then OK
    port = db.start()                            # 127.0.0.1:port
    ... cajal train --katib-push --katib-db-manager 127.0.0.1:{port} ...
    db.requests   # [{'trial_name', 'metrics': [(name, value, time_stamp)], 'received'}]
    db.stop()

`fail_code` picks the gRPC code of the failures (UNAVAILABLE by default); `fail_first=-1`
fails every call.
"""
import threading
import time
from concurrent import futures

import grpc
from katib.v1beta1 import api_pb2, api_pb2_grpc


class _Servicer(api_pb2_grpc.DBManagerServicer):
    def __init__(self, owner):
        self.owner = owner

    def ReportObservationLog(self, request, context):
        o = self.owner
        with o.lock:
            o.attempts += 1
            failing = o.fail_first < 0 or o.attempts <= o.fail_first
            if not failing:
                o.requests.append({
                    'trial_name': request.trial_name,
                    'metrics': [(m.metric.name, m.metric.value, m.time_stamp)
                                for m in request.observation_log.metric_logs],
                    'received': time.time(),
                })
        if failing:
            context.abort(o.fail_code, f'test db-manager: failing call {o.attempts} on purpose')
        return api_pb2.ReportObservationLogReply()


class FakeDbManager:
    def __init__(self, fail_first=0, fail_code=grpc.StatusCode.UNAVAILABLE):
        self.fail_first = fail_first
        self.fail_code = fail_code
        self.lock = threading.Lock()
        self.attempts = 0
        self.requests = []
        self.server = None

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_DBManagerServicer_to_server(_Servicer(self), self.server)
        port = self.server.add_insecure_port('127.0.0.1:0')
        self.server.start()
        return port

    def stop(self):
        if self.server is not None:
            self.server.stop(grace=None)
            self.server = None

    def metrics(self):
        """Every recorded (name, value, time_stamp), in arrival order."""
        with self.lock:
            return [m for r in self.requests for m in r['metrics']]
