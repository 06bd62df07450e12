"""Where frames go: numbered images, the H.264 video in segments with its audio, and the state that makes a run
resumable."""
