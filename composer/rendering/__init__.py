"""What is done to each frame and who does it: the frame step, the reference loop, the pipeline and the segment
renderer, the preloader, memory accounting and the choice between the renderers."""
