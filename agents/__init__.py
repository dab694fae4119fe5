"""The Faust app and its stream agents."""
