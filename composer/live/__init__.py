"""Live rendering: frames leave at the output's frame rate as the conditioning rows arrive (docs/design.md 4.10).

The room sits above ``rendering``, whose frame step it runs one row at a time, and below the command line::

    rows on stdin --[reader]--> size-1 slot (newest wins) --[renderer: frame step]--> finished frames
                        |                                                                  |
                        +--> timeline: which slot of the stream shows which row   [writer: clock at the fps]
                                                                                           |
                                                                             MPEG-TS or numbered images

``clock``: the stream's clock and the size-1 slot; ``timeline``: rows placed on the stream's slots; ``reader``:
rows read and checked; ``renderer``: the frame step for one row; ``stream``: the stream writers; ``stats``:
per-frame times and the summary; ``runner``: the threads together.
"""
