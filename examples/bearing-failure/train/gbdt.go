package main

import (
	"math"
	"slices"
	"sort"
)

// config holds the boosting parameters; the model file's parameters section
// repeats them under LightGBM's names.
type config struct {
	Trees    int     // boosting rounds
	Depth    int     // maximum tree depth
	Rate     float64 // learning rate (shrinkage)
	Lambda   float64 // L2 regularisation of leaf values
	MinLeaf  int     // minimum rows in a leaf
	MaxBins  int     // histogram bins per feature, at most 256
	Features []string
}

// tree is one regression tree in LightGBM's own layout, so that writing the
// model file is a plain dump: internal node i sends x to left[i] when
// x[feature[i]] <= threshold[i], else to right[i]; a child c >= 0 is a node,
// c < 0 is leaf ^c. Node 0 is the root.
type tree struct {
	// Per internal node.
	feature                       []int
	threshold, gain               []float64
	left, right                   []int
	internalValue, internalWeight []float64
	internalCount                 []int
	// Per leaf.
	leafValue, leafWeight []float64
	leafCount             []int
	shrinkage             float64
}

func (t *tree) predict(x []float64) float64 {
	if len(t.feature) == 0 {
		return t.leafValue[0]
	}
	c := 0
	for c >= 0 {
		if x[t.feature[c]] <= t.threshold[c] {
			c = t.left[c]
		} else {
			c = t.right[c]
		}
	}
	return t.leafValue[^c]
}

// ensemble is a trained binary classifier: sigmoid of the sum of its trees.
type ensemble struct {
	config
	min, max []float64 // per-feature range of the training data
	trees    []*tree
}

// predict sums the trees from 0 in order and applies the sigmoid exactly as
// leaves does, so both give bit-identical results.
func (e *ensemble) predict(x []float64) float64 {
	raw := 0.0
	for _, t := range e.trees {
		raw += t.predict(x)
	}
	return 1.0 / (1.0 + math.Exp(-raw))
}

// train fits a gradient-boosted ensemble for binary log loss: each tree is a
// Newton step on the gradients p-y and hessians p(1-p) of the current
// scores, grown depth-first on per-feature histograms.
func train(X [][]float64, y []float64, cfg config) *ensemble {
	nf := len(cfg.Features)
	e := &ensemble{config: cfg, min: make([]float64, nf), max: make([]float64, nf)}
	cuts := make([][]float64, nf)
	codes := make([][]uint8, nf) // codes[f][i]: histogram bin of X[i][f]
	for f := range nf {
		col := make([]float64, len(X))
		for i, x := range X {
			col[i] = x[f]
		}
		cuts[f] = binCuts(col, cfg.MaxBins)
		codes[f] = make([]uint8, len(X))
		for i, v := range col {
			codes[f][i] = uint8(sort.SearchFloat64s(cuts[f], v)) // first cut >= v
		}
		e.min[f], e.max[f] = slices.Min(col), slices.Max(col)
	}

	// Start from the log-odds of the base rate; like LightGBM's
	// boost_from_average it is folded into the first tree.
	mean := 0.0
	for _, v := range y {
		mean += v / float64(len(y))
	}
	init := math.Log(mean / (1 - mean))
	score := make([]float64, len(X))
	for i := range score {
		score[i] = init
	}
	g, h := make([]float64, len(X)), make([]float64, len(X))
	rows := make([]int, len(X))
	for i := range rows {
		rows[i] = i
	}
	for k := range cfg.Trees {
		for i := range X {
			p := 1 / (1 + math.Exp(-score[i]))
			g[i], h[i] = p-y[i], p*(1-p)
		}
		b := &builder{cfg: cfg, cuts: cuts, codes: codes, g: g, h: h, t: &tree{shrinkage: cfg.Rate}}
		b.grow(rows, 0)
		b.t.scale(cfg.Rate)
		for i, x := range X {
			score[i] += b.t.predict(x)
		}
		if k == 0 {
			b.t.addBias(init)
		}
		e.trees = append(e.trees, b.t)
	}
	return e
}

// binCuts returns up to maxBins-1 increasing cut points at quantiles of col,
// each halfway between two neighbouring distinct values (as LightGBM does).
func binCuts(col []float64, maxBins int) []float64 {
	s := slices.Clone(col)
	slices.Sort(s)
	var cuts []float64
	for k := 1; k < maxBins; k++ {
		v := s[k*len(s)/maxBins]
		j := sort.SearchFloat64s(s, math.Nextafter(v, math.Inf(1))) // first value > v
		if j < len(s) && (len(cuts) == 0 || (v+s[j])/2 > cuts[len(cuts)-1]) {
			cuts = append(cuts, (v+s[j])/2)
		}
	}
	return cuts
}

type builder struct {
	cfg   config
	cuts  [][]float64
	codes [][]uint8
	g, h  []float64
	t     *tree
}

// grow builds the subtree for rows, depth-first so that the root is node 0,
// and returns its child code.
func (b *builder) grow(rows []int, depth int) int {
	var G, H float64
	for _, i := range rows {
		G, H = G+b.g[i], H+b.h[i]
	}
	value := -G / (H + b.cfg.Lambda)
	var f, bin int
	var gain float64
	if depth < b.cfg.Depth {
		f, bin, gain = b.bestSplit(rows, G, H)
	}
	t := b.t
	if gain <= 0 {
		t.leafValue = append(t.leafValue, value)
		t.leafWeight = append(t.leafWeight, H)
		t.leafCount = append(t.leafCount, len(rows))
		return ^(len(t.leafValue) - 1)
	}
	node := len(t.feature)
	t.feature = append(t.feature, f)
	t.threshold = append(t.threshold, b.cuts[f][bin])
	t.gain = append(t.gain, gain)
	t.internalValue = append(t.internalValue, value)
	t.internalWeight = append(t.internalWeight, H)
	t.internalCount = append(t.internalCount, len(rows))
	t.left, t.right = append(t.left, 0), append(t.right, 0) // set below
	var left, right []int
	for _, i := range rows {
		if int(b.codes[f][i]) <= bin {
			left = append(left, i)
		} else {
			right = append(right, i)
		}
	}
	t.left[node] = b.grow(left, depth+1)
	t.right[node] = b.grow(right, depth+1)
	return node
}

// bestSplit scans each feature's gradient histogram for the cut with the
// largest loss reduction G_L²/(H_L+λ) + G_R²/(H_R+λ) - G²/(H+λ).
func (b *builder) bestSplit(rows []int, G, H float64) (feature, bin int, gain float64) {
	lambda, minLeaf := b.cfg.Lambda, b.cfg.MinLeaf
	parent := G * G / (H + lambda)
	for f, cuts := range b.cuts {
		hg, hh, hc := make([]float64, len(cuts)+1), make([]float64, len(cuts)+1), make([]int, len(cuts)+1)
		for _, i := range rows {
			c := b.codes[f][i]
			hg[c], hh[c], hc[c] = hg[c]+b.g[i], hh[c]+b.h[i], hc[c]+1
		}
		var gl, hl float64
		nl := 0
		for c := range cuts {
			gl, hl, nl = gl+hg[c], hl+hh[c], nl+hc[c]
			if nl < minLeaf || len(rows)-nl < minLeaf {
				continue
			}
			gr, hr := G-gl, H-hl
			if s := gl*gl/(hl+lambda) + gr*gr/(hr+lambda) - parent; s > gain {
				feature, bin, gain = f, c, s
			}
		}
	}
	return feature, bin, gain
}

func (t *tree) scale(k float64) {
	for i := range t.leafValue {
		t.leafValue[i] *= k
	}
	for i := range t.internalValue {
		t.internalValue[i] *= k
	}
}

func (t *tree) addBias(v float64) {
	for i := range t.leafValue {
		t.leafValue[i] += v
	}
	for i := range t.internalValue {
		t.internalValue[i] += v
	}
}
