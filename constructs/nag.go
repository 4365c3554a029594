package streamer

func (c *StreamerConstruct) suppressNagFindings() {}
