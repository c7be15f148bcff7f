"""A stand-in for decord, for the random-weights harness only (it keeps the device carry under its size limit).

Live Avatar imports decord.VideoReader at module level but reads video only for a pose video or a previous video
(causal_s2v_pipeline.py: read_last_n_frames), which the harness never passes: any use raises.
"""


class VideoReader:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("decord is not installed in this harness: a video input (pose_video, pre_video) was asked for")
