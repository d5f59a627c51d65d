	D>ŽÙWëÀ ó](ó]j
	hello â‚¬