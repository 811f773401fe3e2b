#!/usr/bin/python3
"""Reads TensorBoard event files independently of cajal's writer, for the tests.

  /usr/bin/python3 read_tfevents.py DIR_OR_FILE...

A directory means every file in it whose name contains "tfevents", in name order. Needs Debian's
python3-protobuf and python3-crc32c, and protoc on PATH: the schema below is this script's own
transcription of TensorFlow's event.proto / summary.proto / tensor.proto (field numbers as in
tensorflow/core/util/event.proto and tensorflow/core/framework/*.proto), deliberately not
cajal's proto/tensorboard/, so that a wrong field number there shows up here.

Prints one line per finding:
  file NAME
  version index=I wall_time=T file_version=V
  scalar index=I step=S tag=TAG value=V form=tensor|simple_value plugin=P data_class=C wall_time=T
  bad index=I offset=O: WHY            (a record whose CRCs are right but whose content is not)
  truncated index=I offset=O: WHY      (the file ends inside a record)
  corrupt index=I offset=O: WHY        (a CRC does not match)
  end records=N                        (N complete, verified records read from the file)
Reading a file stops at its first truncated or corrupt record; the records before it are
printed. Exit status: 0 every file clean, 1 some file truncated, corrupt or bad, 2 usage error.
"""

import os
import struct
import subprocess
import sys
import tempfile

import crc32c

SCHEMA = r'''
syntax = "proto3";
package tfcheck;
message TensorShapeProto {
  message Dim { int64 size = 1; string name = 2; }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}
message TensorProto {
  int32 dtype = 1;  // DataType; DT_FLOAT = 1
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated float float_val = 5;
  repeated double double_val = 6;
}
message SummaryMetadata {
  message PluginData { string plugin_name = 1; bytes content = 2; }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  int32 data_class = 4;  // DataClass; DATA_CLASS_SCALAR = 1
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      bytes image = 4;
      bytes histo = 5;
      bytes audio = 6;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    bytes log_message = 6;
    bytes session_log = 7;
    bytes tagged_run_metadata = 8;
    bytes meta_graph_def = 9;
  }
}
'''

DT_FLOAT = 1


def load_schema(tmp):
    os.makedirs(os.path.join(tmp, 'tfcheck'))
    with open(os.path.join(tmp, 'tfcheck', 'tfevent.proto'), 'w') as f:
        f.write(SCHEMA)
    subprocess.run(['protoc', '--proto_path=' + tmp, '--python_out=' + tmp,
                    'tfcheck/tfevent.proto'], check=True)
    sys.path.insert(0, tmp)
    from tfcheck import tfevent_pb2  # pylint: disable=import-outside-toplevel
    return tfevent_pb2


def masked_crc(data):
    crc = crc32c.crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def scalar_of(value):
    """(number, form) of a Summary.Value, or (None, why)."""
    kind = value.WhichOneof('value')
    if kind == 'simple_value':
        return value.simple_value, 'simple_value'
    if kind != 'tensor':
        return None, 'value holds %s, not a scalar' % kind
    t = value.tensor
    if t.dtype != DT_FLOAT:
        return None, 'tensor dtype %d, not DT_FLOAT' % t.dtype
    if len(t.tensor_shape.dim) != 0:
        return None, 'tensor rank %d, not 0' % len(t.tensor_shape.dim)
    if len(t.float_val) == 1 and not t.tensor_content:
        return t.float_val[0], 'tensor'
    if len(t.tensor_content) == 4 and not t.float_val:
        return struct.unpack('<f', t.tensor_content)[0], 'tensor'
    return None, 'tensor holds %d float_val and %d content bytes, not one float' % (
        len(t.float_val), len(t.tensor_content))


def read_file(path, pb):
    """Prints the file's findings; returns True when it is clean."""
    print('file %s' % os.path.basename(path))
    with open(path, 'rb') as f:
        data = f.read()
    offset, index, clean = 0, 0, True
    while offset < len(data):
        where = 'index=%d offset=%d' % (index, offset)
        if len(data) - offset < 12:
            print('truncated %s: %d bytes left, a header needs 12' % (where, len(data) - offset))
            return False
        header = data[offset:offset + 8]
        (length,) = struct.unpack('<Q', header)
        (length_crc,) = struct.unpack('<I', data[offset + 8:offset + 12])
        if masked_crc(header) != length_crc:
            print('corrupt %s: length crc stored 0x%08x, computed 0x%08x' %
                  (where, length_crc, masked_crc(header)))
            return False
        if len(data) - offset - 12 < length + 4:
            print('truncated %s: record of %d bytes, %d bytes left after its header' %
                  (where, length, len(data) - offset - 12))
            return False
        body = data[offset + 12:offset + 12 + length]
        (data_crc,) = struct.unpack('<I', data[offset + 12 + length:offset + 16 + length])
        if masked_crc(body) != data_crc:
            print('corrupt %s: data crc stored 0x%08x, computed 0x%08x' %
                  (where, data_crc, masked_crc(body)))
            return False
        event = pb.Event()
        event.ParseFromString(body)
        what = event.WhichOneof('what')
        if what == 'file_version':
            print('version index=%d wall_time=%.6f file_version=%s' %
                  (index, event.wall_time, event.file_version))
        elif what == 'summary':
            for value in event.summary.value:
                number, form = scalar_of(value)
                if number is None:
                    print('bad %s: tag %s: %s' % (where, value.tag, form))
                    clean = False
                    continue
                print('scalar index=%d step=%d tag=%s value=%.9g form=%s plugin=%s '
                      'data_class=%d wall_time=%.6f' %
                      (index, event.step, value.tag, number, form,
                       value.metadata.plugin_data.plugin_name or '-',
                       value.metadata.data_class, event.wall_time))
        else:
            print('bad %s: event holds %s' % (where, what))
            clean = False
        offset += 16 + length
        index += 1
    print('end records=%d' % index)
    return clean


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    files = []
    for arg in argv[1:]:
        if os.path.isdir(arg):
            files += [os.path.join(arg, n) for n in sorted(os.listdir(arg)) if 'tfevents' in n]
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            print('read_tfevents: %s: no such file or directory' % arg, file=sys.stderr)
            return 2
    if not files:
        print('read_tfevents: no event files in %s' % ' '.join(argv[1:]), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pb = load_schema(tmp)
        clean = True
        for path in files:
            clean = read_file(path, pb) and clean
    return 0 if clean else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
