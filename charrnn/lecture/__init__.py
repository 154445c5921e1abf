"""The lecture's example, ``charrnn hello``: a 3-unit vanilla RNN learns "hello"
(:mod:`charrnn.lecture.hello`)."""
