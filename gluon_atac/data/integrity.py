"""Damaged images found by name, in class folders and record files.

Both ImageNet readers stop at the first damaged image with a :class:`DataError` naming
it: a silently smaller or altered data set would change the published numbers. MXNet
does not report every damaged image itself: a JPEG whose headers its decoder refuses
comes out of ``mx.image.imread`` as an uninitialized array, and one cut short as grey
pixels; ``ImageRecordIter`` aborts the process on a damaged record header and divides by
zero on an image it cannot decode. So images are checked here, without decoding pixels:
a JPEG's headers up to its first scan are held to the checks by which MXNet's decoder
(libjpeg-turbo 2.0) refuses a file, and its data must end with the end marker; a PNG's
chunks must match their checksums. A class folder's images are checked as they are
read; a record file once per process, before ``ImageRecordIter`` reads it.

Before any of that, the size an image's header states (JPEG frame, PNG ``IHDR``) is held to
a pixel limit (:func:`set_max_pixels`, ``--max-pixels``) and a bound on the ratio of its
sides, so a file of a few hundred bytes cannot make the decoder, or the resize after it,
allocate gigabytes; other formats, whose size is not read here, are refused.

Not found: bytes changed inside a JPEG's compressed picture data, which decoders conceal
(the picture comes out partly wrong), and damage after a progressive JPEG's first scan.
When such damage makes the decoder fail, a folder's image is still named, and a record
file's training iterator raises (the readers in :mod:`gluon_atac.data.imagenet` name the
file), but its validation iterator crashes the process (MXNet's resize divides by the
width of the image that failed).
"""
import functools
import math
import mmap
import os
import struct
import zlib

import mxnet as mx

from ..errors import DataError

__all__ = ['decode_image_file', 'check_record_file', 'DEFAULT_MAX_PIXELS', 'MAX_SIDE_RATIO',
           'set_max_pixels', 'max_pixels', 'add_pixel_limit_flag', 'image_size']

# Pixels an image may have by its header, unless raised (--max-pixels): a 641-byte JPEG
# whose frame says 26000 x 26000 would otherwise be decoded into 2 GB, and resized from
# there at twice that. 50 megapixels is a 150 MB decode, far above any data set's photos.
DEFAULT_MAX_PIXELS = 50 * 1000 * 1000
# Long side over short side: resizing the short side of a 1 x 10000 image to 256 makes
# 256 x 2560000 pixels (2 GB), though the image itself is tiny. Panoramas stay far below.
MAX_SIDE_RATIO = 100
_LIMIT = {'pixels': DEFAULT_MAX_PIXELS}

# OpenCV takes data for a JPEG only if it starts with these three bytes.
_JPEG_START, _JPEG_END, _JPEG_SCAN = b'\xff\xd8\xff', b'\xff\xd9', b'\xff\xda'
_PNG_START = b'\x89PNG\r\n\x1a\n'
# Frame (SOF) markers of the processes libjpeg-turbo 2.0 decodes: baseline, extended,
# progressive, and their arithmetic-coded forms; the others are lossless or hierarchical.
_FRAMES = (0xc0, 0xc1, 0xc2, 0xc9, 0xca)
_UNSUPPORTED_FRAMES = (0xc3, 0xc5, 0xc6, 0xc7, 0xc8, 0xcb, 0xcd, 0xce, 0xcf)
_PROGRESSIVE = (0xc2, 0xca)
# Markers the decoder reads before the image data: frames, tables, scan, restart interval,
# DNL, application segments, comments; any other stops it.
_READ = frozenset(_FRAMES + (0xc4, 0xcc, 0xda, 0xdb, 0xdc, 0xdd, 0xfe)
                  + tuple(range(0xe0, 0xf0)))
# Segments whose content the decoder checks (the others it skips): tables, restart
# interval, scan; frames are added without their size.
_INTERPRETED = frozenset((0xc4, 0xda, 0xdb, 0xdd))
_MAX_SIDE = 65500
# OpenCV refuses images of more pixels than this.
_MAX_PIXELS = 1 << 30
# dmlc RecordIO: every part of a record starts with this word and a length word whose top
# 3 bits say whether the part is a whole record (0) or its first, middle or last part.
_RECORD_MAGIC = 0xced7230a
_MAGIC_BYTES = struct.pack('<I', _RECORD_MAGIC)
_LENGTH_MASK = (1 << 29) - 1
_IR_HEADER = struct.Struct(mx.recordio._IR_FORMAT)
# Records whose pages are requested from the disk together.
_AHEAD = 2048


def _u16(data, pos):
    return (data[pos] << 8) | data[pos + 1]


def _frame_problem(body):
    """``(problem or None, components)`` of a frame header's precision, component count
    and component specifications; components map an id to (blocks per unit, quantization
    table)."""
    precision, count, spec = body[0], body[1], body[2:]
    if len(spec) != 3 * count or count not in (1, 3, 4):
        return 'a frame header of %d components in %d bytes' % (count, len(body) + 6), None
    if precision != 8:
        return '%d-bit samples, which MXNet does not decode' % precision, None
    across, down = [s >> 4 for s in spec[1::3]], [s & 15 for s in spec[1::3]]
    # The decoder upsamples only by whole factors.
    for a, d in zip(across, down):
        if not (1 <= a <= 4 and 1 <= d <= 4) or max(across) % a or max(down) % d:
            return 'a damaged frame header (sampling factors)', None
    return None, dict(zip(spec[0::3], zip([a * d for a, d in zip(across, down)], spec[2::3])))


def _huffman_table_problem(kind, counts, symbols):
    # The decoder's checks: the code lengths form a prefix code, DC symbols are bit counts.
    code, longest = 0, max([i for i, c in enumerate(counts, 1) if c] or [0])
    for size, count in enumerate(counts[:longest], 1):
        code += count
        if code >= 1 << size:
            return 'a damaged Huffman table'
        code <<= 1
    if sum(counts) > 256 or (kind == 0 and any(s > 15 for s in symbols)):
        return 'a damaged Huffman table'
    return None


def _tables_problem(body, huffman):
    """``(problem or None, slots defined)`` of a DHT (``huffman``) or DQT segment."""
    name = 'Huffman' if huffman else 'quantization'
    pos, slots = 0, set()
    while pos < len(body):
        kind, slot = body[pos] >> 4, body[pos] & 15
        if kind > 1 or slot > 3:
            return 'a damaged %s table' % name, slots
        if huffman:
            counts = body[pos + 1:pos + 17]
            symbols = body[pos + 17:pos + 17 + sum(counts)]
            problem = _huffman_table_problem(kind, counts, symbols)
            if problem:
                return problem, slots
            pos += 17 + sum(counts)
            slots.add((kind, slot))
        else:
            pos += 1 + 64 * (kind + 1)
            slots.add(slot)
    if pos != len(body):
        return 'a %s table overrunning its segment' % name, slots
    return None, slots


def _scan_problem(body, frame):
    """Problem of the first scan header (SOS) given what ``frame`` says, or ``None``."""
    components = frame['components']
    count = body[0]
    if components is None:
        return 'a scan before the frame header'
    if len(body) != 4 + 2 * count or not 1 <= count <= 4:
        return 'a scan header of %d components in %d bytes' % (count, len(body) + 2)
    # The decoder needs a component's quantization table when its first scan starts;
    # encoders write them all before the first scan, so a missing one is damage.
    if not {table for _, table in components.values()} <= frame['quant']:
        return 'a component of an undefined quantization table'
    spec, (first, last, refine) = body[1:-3], body[-3:]
    if frame['progressive'] and (
            (first == 0 and last != 0) or (first and (first > last or last > 63 or count > 1))
            or (refine >> 4 and refine & 15 != (refine >> 4) - 1) or refine & 15 > 13):
        return 'a damaged progressive scan header'
    ids = spec[0::2]
    if len(set(ids)) != count or not set(ids) <= components.keys():
        return 'a scan of an undefined component'
    if count > 1 and sum(components[i][0] for i in ids) > 10:
        return 'a scan of more than 10 blocks per unit'
    needed = set()
    for tables in spec[1::2]:
        if first == 0 and not refine >> 4:
            needed.add((0, tables >> 4))
        if last:
            needed.add((1, tables & 15))
    # The decoder fills in standard tables for slots 0 and 1 (Motion JPEG omits them).
    if not frame['arithmetic'] and not {t for t in needed if t[1] > 1} <= frame['huffman']:
        return 'a scan of an undefined Huffman table'
    return None


# Encoders write the same headers, but for the image size, into most images of a data
# set, so each variant is checked once.
@functools.lru_cache(maxsize=1024)
def _segments_problem(segments):
    """Problem of a JPEG's ``(marker, body)`` segments up to its first scan, or ``None``."""
    frame = {'components': None, 'quant': set(), 'huffman': set(), 'progressive': False,
             'arithmetic': False}
    for marker, body in segments:
        problem = None
        if marker == 0xda:
            return _scan_problem(body, frame)
        if marker in _FRAMES:
            if frame['components'] is not None:
                return 'a second frame header'
            problem, frame['components'] = _frame_problem(body)
            frame['progressive'] = marker in _PROGRESSIVE
            frame['arithmetic'] = marker >= 0xc9
        elif marker == 0xdd:
            problem = len(body) != 2 and 'a damaged restart interval'
        else:
            problem, slots = _tables_problem(body, marker == 0xc4)
            frame['huffman' if marker == 0xc4 else 'quant'].update(slots)
        if problem:
            return problem
    return None


def set_max_pixels(pixels):
    """Set the pixel limit every reader holds image headers to; return the previous one.

    Set before any loader starts: loader processes inherit it when they fork.

    Parameters
    ----------
    pixels : int
        Width times height allowed; at least 1.
    """
    if pixels < 1:
        raise ValueError('--max-pixels must be >= 1, got %d' % pixels)
    previous, _LIMIT['pixels'] = _LIMIT['pixels'], int(pixels)
    return previous


def max_pixels():
    """The pixel limit in force (:func:`set_max_pixels`)."""
    return _LIMIT['pixels']


def add_pixel_limit_flag(parser):
    """Add ``--max-pixels`` to a command's ``parser``; the command passes its value to
    :func:`set_max_pixels`."""
    parser.add_argument('--max-pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='refuse images whose header says more pixels (width x height) '
                             'than this, before decoding them (default %d)'
                             % DEFAULT_MAX_PIXELS)


class _Refused(str):
    """A problem that is not damage: the image is intact but too large to decode."""

    @staticmethod
    def verb(problem):
        """How a message names an image with ``problem``."""
        return 'refused' if isinstance(problem, _Refused) else 'damaged'


def _size_problem(kind, width, height):
    """Why a ``kind`` (JPEG, PNG) image of ``width x height`` pixels, by its header, is
    refused before decoding, or ``None``."""
    if width * height > _LIMIT['pixels']:
        return _Refused('%s of %d x %d pixels, over the limit of %d pixels (--max-pixels '
                        'raises it)' % (kind, width, height, _LIMIT['pixels']))
    if max(width, height) > MAX_SIDE_RATIO * min(width, height):
        return _Refused('%s of %d x %d pixels, one side over %d times the other (its resize '
                        'would take far more memory than the image)'
                        % (kind, width, height, MAX_SIDE_RATIO))
    return None


def _png_size(data, start, end):
    """``(width, height)`` of the PNG in ``data[start:end]`` from its IHDR chunk, which
    must come first, or ``None``."""
    pos = start + len(_PNG_START)
    if end - pos < 16 or data[pos + 4:pos + 8] != b'IHDR':
        return None
    return struct.unpack_from('>II', data, pos + 8)


def _jpeg_size(data, start, end):
    """``(width, height)`` of the JPEG in ``data[start:end]`` from its first frame header,
    or ``None``."""
    pos = start + 2
    while pos + 9 <= end:
        pos = data.find(b'\xff', pos, end)
        if pos < 0 or pos + 9 > end:
            return None
        marker = data[pos + 1]
        if marker == 0xff or marker in (0x00, 0x01) or 0xd0 <= marker <= 0xd7:
            pos += 1 if marker == 0xff else 2
            continue
        if marker in _FRAMES or marker in _UNSUPPORTED_FRAMES:
            return _u16(data, pos + 7), _u16(data, pos + 5)
        if marker in (0xda, 0xd9):
            return None
        pos += 2 + _u16(data, pos + 2)
    return None


def image_size(path):
    """``(width, height)`` of a JPEG or PNG file from its header, without decoding; ``None``
    for other files or a header that does not say."""
    with open(path, 'rb') as handle:
        data = handle.read()
    if data.startswith(_JPEG_START):
        return _jpeg_size(data, 0, len(data))
    if data.startswith(_PNG_START):
        return _png_size(data, 0, len(data))
    return None


def _jpeg_header_problem(data, start, end):
    """Why MXNet's decoder refuses the JPEG in ``data[start:end]``, from its headers, or
    ``None``.

    The headers are read as the decoder reads them, up to the first scan, with the checks
    by which it stops.
    """
    cut = 'headers cut before the image data'
    segments, pos = [], start + 2
    while True:
        if pos + 4 > end:
            return cut
        # Like the decoder, pass over bytes that are not a marker (it warns about them).
        if data[pos] != 0xff:
            pos = data.find(b'\xff', pos, end)
        while 0 <= pos < end - 1 and data[pos + 1] == 0xff:
            pos += 1
        if pos < 0 or pos + 4 > end:
            return cut
        marker = data[pos + 1]
        if marker == 0x00 or marker == 0x01 or 0xd0 <= marker <= 0xd7:
            pos += 2
            continue
        if marker in _UNSUPPORTED_FRAMES:
            return 'a frame type (0x%02x) MXNet does not decode' % marker
        if marker not in _READ:
            return 'an unexpected marker 0x%02x at byte %d' % (marker, pos - start)
        length = _u16(data, pos + 2)
        if length < 2 or pos + 2 + length > end:
            return 'a segment running past the image data'
        if marker in _FRAMES and length >= 8:
            height, width = _u16(data, pos + 5), _u16(data, pos + 7)
            if not 0 < height <= _MAX_SIDE or not 0 < width <= _MAX_SIDE \
                    or height * width > _MAX_PIXELS:
                return 'a size of %d x %d pixels' % (width, height)
            segments.append((marker, data[pos + 4:pos + 5] + data[pos + 9:pos + 2 + length]))
        elif marker in _INTERPRETED:
            segments.append((marker, data[pos + 4:pos + 2 + length]))
        if marker == 0xda:
            return _segments_problem(tuple(segments))
        pos += 2 + length


def _jpeg_is_cut(data, start, end):
    """Whether the JPEG in ``data[start:end]`` stops before the end marker of its last scan.

    Decoders fill the rest of a cut JPEG with grey instead of failing. Bytes after the end
    marker (some cameras append them) are allowed.
    """
    return (data[end - 2:end] != _JPEG_END
            and data.rfind(_JPEG_END, start, end) < data.rfind(_JPEG_SCAN, start, end))


def _png_problem(data, start, end):
    """Why the PNG in ``data[start:end]`` is damaged, or ``None``."""
    pos = start + len(_PNG_START)
    while pos + 12 <= end:
        length = struct.unpack_from('>I', data, pos)[0]
        body_end = pos + 8 + length
        if body_end + 4 > end:
            break
        if zlib.crc32(data[pos + 4:body_end]) != struct.unpack_from('>I', data, body_end)[0]:
            return 'PNG chunk at byte %d fails its checksum' % (pos - start)
        if data[pos + 4:pos + 8] == b'IEND':
            return None
        pos = body_end + 4
    return 'PNG data stops before its IEND chunk (truncated)'


def _image_problem(data, start, end):
    """Why the JPEG or PNG image in ``data[start:end]`` is damaged, or ``None`` (also for
    other formats, which only decoding checks)."""
    if data[start:start + len(_JPEG_START)] == _JPEG_START:
        size = _jpeg_size(data, start, end)
        problem = size and _size_problem('JPEG', *size)
        if problem:
            return problem
        problem = _jpeg_header_problem(data, start, end)
        if problem:
            return 'JPEG with ' + problem
        if _jpeg_is_cut(data, start, end):
            return 'JPEG data stops before its end marker (truncated)'
    elif data[start:start + len(_PNG_START)] == _PNG_START:
        size = _png_size(data, start, end)
        if size is None:
            return 'PNG without its IHDR header chunk first'
        return _size_problem('PNG', *size) or _png_problem(data, start, end)
    else:
        # Other formats' sizes are not read here, so their decoding would be unbounded.
        return _Refused('neither JPEG nor PNG, the formats whose size is checked before '
                        'decoding')
    return None


def decode_image_file(path, flag=1, where=None, wait=True):
    """The image in ``path``, read by ``mx.image.imread`` once checked, or a one-line error.

    Parameters
    ----------
    path : str
    flag : int, default 1
        1: three channels (RGB), 0: grey, as ``mx.image.imread``.
    where : str, optional
        Added to the message in parentheses, e.g. ``class folder <root>``.
    wait : bool, default True
        Wait for MXNet's decoding, which runs asynchronously, so that its failure is named
        here. Loaders pass ``False`` to overlap the decoding with their next image; a
        failure then shows when the image is used, unnamed (the readers in
        :mod:`gluon_atac.data.imagenet` then decode that batch's images again, waiting).

    Returns
    -------
    NDArray
        uint8 ``H x W x C``.

    Raises
    ------
    DataError
        ``damaged image <path> (<where>): <what>`` for an empty file, a damaged JPEG or PNG
        (see the module's description) or data MXNet cannot decode; ``refused image ...``
        for an image over the size bounds, or neither JPEG nor PNG.
    """
    with open(path, 'rb') as handle:
        data = handle.read()
    name = path if where is None else '%s (%s)' % (path, where)
    problem = _image_problem(data, 0, len(data)) if data else 'the file is empty'
    if problem:
        raise DataError('%s image %s: %s' % (_Refused.verb(problem), name, problem))
    try:
        # MXNet reads the file again, from the page cache: that costs less than handing it
        # the bytes (an NDArray copy).
        image = mx.image.imread(path, flag)
        if wait:
            image.wait_to_read()
    except mx.base.MXNetError:
        raise DataError('damaged image %s: MXNet cannot decode it' % name) from None
    return image


def _record_problem(data, start, end):
    """Why the record at byte ``start``, which the index ends at ``end``, is damaged, or
    ``None``."""
    truncated = "the file stops at byte %d, short of the record's end (truncated)" % len(data)
    parts, pos = [], start
    while True:
        if pos + 8 > len(data):
            return truncated
        if pos < 0 or pos + 8 > end or struct.unpack_from('<I', data, pos)[0] != _RECORD_MAGIC:
            return 'no record header at byte %d' % pos
        word = struct.unpack_from('<I', data, pos + 4)[0]
        part, length = word >> 29, word & _LENGTH_MASK
        if (part in (0, 1)) != (not parts):
            return 'a damaged record header at byte %d' % pos
        parts.append((pos + 8, pos + 8 + length))
        pos += 8 + (length + 3) // 4 * 4
        if pos > len(data):
            return truncated
        if part in (0, 3):
            break
    if pos != end:
        return 'its header says it ends at byte %d, the index at byte %d' % (pos, end)
    if len(parts) == 1:
        (start, end), payload = parts[0], data
    else:
        # The writer split the record where its data held the magic word, which the
        # reader puts back between the parts.
        payload = _MAGIC_BYTES.join(data[a:b] for a, b in parts)
        start, end = 0, len(payload)
    if end - start < _IR_HEADER.size:
        return 'it is too short for its label header'
    labels, label = _IR_HEADER.unpack_from(payload, start)[:2]
    if not labels and not (math.isfinite(label) and label >= 0 and label == int(label)):
        return 'its label %r is not a class number' % label
    image = start + _IR_HEADER.size + 4 * labels
    if payload[image:image + len(_JPEG_START)] != _JPEG_START \
            and payload[image:image + len(_PNG_START)] != _PNG_START:
        return 'its image is neither JPEG nor PNG'
    return _image_problem(payload, image, end)


def _read_index(idx):
    """``(offset, key)`` of every record ``idx`` lists, by offset."""
    entries = []
    with open(idx) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                key, offset = int(fields[0]), int(fields[1])
            except (IndexError, ValueError):
                raise DataError('%s line %d is not "<key> <offset>": %r'
                                % (idx, number, line.strip()[:60])) from None
            entries.append((offset, key))
    if not entries:
        raise DataError('%s lists no records' % idx)
    return sorted(entries)


def _request(data, records):
    """Have the kernel start reading the pages of ``records`` that their check reads."""
    for start, end, _ in records:
        for pos in (start, end - 1):
            if 0 <= pos < len(data):
                data.madvise(mmap.MADV_WILLNEED, pos - pos % mmap.PAGESIZE, 1)


@functools.lru_cache(maxsize=None)
def _checked(rec, idx, stamps, pixels):
    # ``pixels``, the limit in force, is part of the cache key: a file checked under one
    # limit is checked again under another.
    entries = _read_index(idx)
    if not stamps[0][1]:
        raise DataError('damaged record %d in %s: the file is empty' % (entries[0][1], rec))
    with open(rec, 'rb') as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        # Only a record's first and last bytes are read: no read-ahead of the rest, and
        # the pages of the next records are requested while these are checked, so the
        # disk serves many at once (3x faster from a cold disk than one by one).
        data.madvise(mmap.MADV_RANDOM)
        ends = [offset for offset, _ in entries[1:]] + [len(data)]
        records = [(start, end, key) for (start, key), end in zip(entries, ends)]
        _request(data, records[:_AHEAD])
        for block in range(0, len(records), _AHEAD):
            _request(data, records[block + _AHEAD:block + 2 * _AHEAD])
            for start, end, key in records[block:block + _AHEAD]:
                problem = _record_problem(data, start, end)
                if problem:
                    raise DataError('%s record %d in %s: %s'
                                    % (_Refused.verb(problem), key, rec, problem))
    return len(entries)


def check_record_file(rec, idx):
    """Check every record that ``idx`` lists in ``rec``; return their number.

    Checked: each record starts where the index says and ends where the next begins (the
    file is not truncated), its label is a class number, and its image is a JPEG whose
    headers decode and which does not stop before its end marker, or a PNG whose chunks
    match their checksums. Pixels are not decoded: of a JPEG only the first and last bytes
    are read (one or two 4 KB pages), about 45 us a record from the page cache and 90 us
    from a cold virtual disk on a slow core. The result is kept per process until either
    file changes, so readers can call this every epoch.

    Parameters
    ----------
    rec : str
        ``.rec`` file.
    idx : str
        Its index (``<key>\\t<offset>`` lines, as ``im2rec`` and
        :func:`gluon_atac.data.imagenet.pack_folder` write).

    Returns
    -------
    int
        Records listed.

    Raises
    ------
    DataError
        ``damaged record <key> in <rec>: <what>``, or an unreadable index line.
    """
    stamps = []
    for path in (rec, idx):
        stat = os.stat(path)
        stamps.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    return _checked(rec, idx, tuple(stamps), max_pixels())
